"""How a lab's pipeline records a movement: the conventions and artefacts of real motion files.

The movement a participant makes is one thing; the numbers a motion-capture pipeline writes for it are another. Real
files from other labs (the treadmill recordings in ../shared/reference_motion/treadmill_walking_expert3, processed
the AddBiomechanics way) differ from a clean simulation in ways that say nothing about the person:

- `locked_feet`: subtalar and MTP joints locked in the musculoskeletal model, so written as a constant (often 0);
- `ground_tilt`: a lab frame whose vertical is not the model's, which shows as constant pelvis tilt and list offsets
  (the treadmill files: pelvis list about 21 degrees while the legs swing normally);
- `pelvis_frame`: a pelvis segment frame rotated against the model's (marker placement, scaling), which shifts hip
  flexion and lumbar extension in opposite sense to the pelvis (the treadmill files: hips -10 to -15 degrees,
  lumbar extension about -35 degrees);
- `arm_convention`: forearm pronation-supination stored near 90 degrees at rest and elbows anywhere from straight to
  140 degrees of flexion (arm segments poorly tracked or another model's zero);
- `frozen_arm`: one arm coordinate the inverse kinematics did not move.

A model trained only on clean simulations reads such offsets as movement: with the treadmill files' arms it said 143
steps/min where the knee angle's period gives 116, and 117 once the arm columns were dropped. Each artefact is drawn
per trial from its own random stream, so the simulated movement and its ground truth do not change with it.
"""

from __future__ import annotations

import numpy as np

from biomechgpt.simulation.kinematics import IDX

__all__ = ["RECORDING_ARTEFACTS", "apply_recording_artefacts"]

# Probability of each artefact per trial (independent draws). Most trials stay clean, so a clean recording still
# looks like the bulk of the training data, and every artefact is common enough to be learnt as irrelevant.
RECORDING_ARTEFACTS: dict[str, float] = {
    "locked_feet": 0.3,
    "ground_tilt": 0.15,
    "pelvis_frame": 0.2,
    "arm_convention": 0.2,
    "frozen_arm": 0.08,
}
_ARM_CHANNELS = tuple(f"{name}_{side}" for side in "rl" for name in ("arm_flex", "arm_add", "arm_rot", "elbow_flex",
                                                                     "pro_sup"))


def apply_recording_artefacts(values: np.ndarray, mask: np.ndarray, rng: np.random.Generator
                              ) -> tuple[np.ndarray, list[str]]:
    """Return a copy of `values` (frames, 33) in canonical radians/meters with this trial's recording artefacts, and
    the names of those applied. Coordinates absent from `mask` stay as they are (zero)."""
    out = np.array(values, dtype=np.float64, copy=True)
    applied: list[str] = []
    draws = {name: rng.uniform() < p for name, p in RECORDING_ARTEFACTS.items()}
    deg = np.pi / 180.0

    def add(column: str, degrees: float) -> None:
        if mask[IDX[column]]:
            out[:, IDX[column]] += degrees * deg

    if draws["locked_feet"]:
        for side in "rl":
            for joint in ("subtalar_angle", "mtp_angle"):
                col = IDX[f"{joint}_{side}"]
                out[:, col] = 0.0 if rng.uniform() < 0.7 else out[:, col].mean()
        applied.append("locked_feet")
    if draws["ground_tilt"]:
        add("pelvis_tilt", float(rng.uniform(-8, 8)))
        add("pelvis_list", float(rng.choice([-1.0, 1.0]) * rng.uniform(4, 25)))
        applied.append("ground_tilt")
    if draws["pelvis_frame"]:
        delta = float(rng.uniform(-10, 30))
        for side in "rl":
            add(f"hip_flexion_{side}", -delta * float(rng.uniform(0.6, 1.0)))
        add("lumbar_extension", -delta * float(rng.uniform(0.8, 1.4)))
        applied.append("pelvis_frame")
    arms_present = bool(mask[IDX["elbow_flex_r"]])
    if arms_present and draws["arm_convention"]:
        elbow = float(rng.uniform(0, 125))
        for side in "rl":
            if rng.uniform() < 0.8:
                add(f"pro_sup_{side}", float(rng.uniform(60, 95)))
            add(f"elbow_flex_{side}", elbow + float(rng.uniform(-10, 10)))
            add(f"arm_add_{side}", float(rng.uniform(-8, 8)))
        applied.append("arm_convention")
    if arms_present and draws["frozen_arm"]:
        col = IDX[_ARM_CHANNELS[int(rng.integers(len(_ARM_CHANNELS)))]]
        out[:, col] = out[0, col]
        applied.append("frozen_arm")
    return out.astype(values.dtype, copy=False), applied
