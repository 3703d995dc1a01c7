"""Joint-angle synthesis: cyclic gait patterns, static postures, and the layers a trial is built from.

Everything here works in degrees for angles and meters for the pelvis translations, on arrays of shape
`(frames, 33)` in `CANONICAL_COORDINATES` order; `activities` converts to the canonical radians at the end.

A trial is composed of layers (see `compose_locomotion`):
  base posture (keyframes: seated, standing, squatting ...)  +  w(t) * (gait pattern at phase phi(t) - standing)
  + pelvis path in the ground plane (progress along a heading)  +  person offsets  +  measurement noise.
The gait pattern comes from Fourier templates fitted to real recordings (`calibration`), warped and scaled per leg
by the diagnosis (`LegMod`) and per trial by speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from biomechgpt.processing.motion import ARM_COORDINATES, CANONICAL_COORDINATES, LUMBAR_COORDINATES
from biomechgpt.simulation.calibration import evaluate_fourier, load_cycle_templates

__all__ = [
    "IDX",
    "N_COORDS",
    "ANGLE_COLUMNS",
    "ARM_COLUMNS",
    "LUMBAR_COLUMNS",
    "LegMod",
    "GaitSpec",
    "stride_length_for_speed",
    "pelvis_height",
    "standing_pose",
    "seated_pose",
    "smooth_keyframes",
    "gait_pattern",
    "compose_locomotion",
    "smooth_noise",
]

IDX: dict[str, int] = {name: i for i, name in enumerate(CANONICAL_COORDINATES)}
N_COORDS = len(CANONICAL_COORDINATES)
_TRANSLATIONS = (IDX["pelvis_tx"], IDX["pelvis_ty"], IDX["pelvis_tz"])
ANGLE_COLUMNS = np.array([i for i in range(N_COORDS) if i not in _TRANSLATIONS])
ARM_COLUMNS = np.array([IDX[c] for c in ARM_COORDINATES])
LUMBAR_COLUMNS = np.array([IDX[c] for c in LUMBAR_COORDINATES])
GRAVITY = 9.81

# Phase (fraction of the stride from foot contact) at which the templates' stance ends.
_TEMPLATE_STANCE = {"walking": 0.60, "running": 0.38, "stairs_up": 0.62, "stairs_down": 0.62}


@dataclass
class LegMod:
    """How a diagnosis changes one leg's gait pattern (degrees unless stated; neutral values change nothing)."""

    crouch: float = 0.0  # 0 = normal template, 1 = the crouch-gait template (cerebral palsy)
    hip_scale: float = 1.0  # range of motion of hip flexion about its mean
    hip_offset: float = 0.0
    knee_stance_scale: float = 1.0  # knee flexion in loading response
    knee_swing_scale: float = 1.0  # peak knee flexion in swing (stiff-knee gait < 1)
    knee_offset: float = 0.0  # constant knee flexion (crouch, flexion contracture)
    ankle_scale: float = 1.0  # ankle range of motion (stiff prosthetic foot, orthosis < 1)
    ankle_offset: float = 0.0  # + dorsiflexion, - plantarflexion (equinus)
    ankle_swing_drop: float = 0.0  # extra plantarflexion in swing (foot drop)
    circumduction: float = 0.0  # hip abduction added in swing
    swing_hip_lift: float = 0.0  # extra hip flexion in swing (steppage, clearance)
    stance_fraction: float | None = None  # None = the template's own
    hip_adduction_offset: float = 0.0
    hip_rotation_offset: float = 0.0
    mtp_scale: float = 1.0


@dataclass
class GaitSpec:
    """One trial's gait: template, timing and the per-leg and trunk changes.

    `stride_time_s` and `stride_length_m` are the means; each stride varies with `stride_cv` (time) and
    `amplitude_cv` (joint excursions), as consecutive steps of a real person do.
    """

    template: str
    stride_time_s: float
    stride_length_m: float
    right: LegMod = field(default_factory=LegMod)
    left: LegMod = field(default_factory=LegMod)
    left_phase: float = 0.5  # phase of left foot contact within the right stride (0.5 = symmetric step times)
    stride_cv: float = 0.02
    amplitude_cv: float = 0.04
    pelvis_tilt_offset: float = 0.0  # + posterior tilt
    pelvis_list_scale: float = 1.0
    pelvis_rotation_scale: float = 1.0
    hike_right: float = 0.0  # pelvic hike during right swing (raises the right side), degrees
    hike_left: float = 0.0
    trunk_flexion: float = 0.0  # forward trunk flexion, degrees
    trunk_lean_right_stance: float = 0.0  # lateral trunk lean over the right leg in its stance (antalgic), deg
    trunk_lean_left_stance: float = 0.0
    arm_swing_right: float = 1.0
    arm_swing_left: float = 1.0
    arm_mode: str = "swing"  # swing | walker | crutches | cane_right | cane_left | balance
    elbow_right: float = 0.0  # extra elbow flexion (flexor synergy after stroke, Parkinson's)
    elbow_left: float = 0.0
    vertical_scale: float = 1.0

    @property
    def speed_m_s(self) -> float:
        return self.stride_length_m / self.stride_time_s


def stride_length_for_speed(speed_m_s: float, leg_length_m: float) -> float:
    """Stride length (m) for a speed, from dynamic similarity (Alexander 1984): stride/leg = 2.3 * Froude^0.3.

    With leg length 0.9 m: 1.3 m at 1.35 m/s (cadence 125 steps/min), 2.3 m when running at 3.5 m/s.
    """
    froude = speed_m_s**2 / (GRAVITY * leg_length_m)
    return float(2.3 * leg_length_m * froude**0.3)


def pelvis_height(leg_length_m: float, hip_deg, knee_deg, tilt_deg=0.0):
    """Pelvis origin height (m) over a foot flat on the ground, for a two-segment leg in the sagittal plane."""
    thigh = shank = 0.47 * leg_length_m
    thigh_angle = np.radians(np.asarray(hip_deg) + tilt_deg)
    shank_angle = thigh_angle - np.radians(knee_deg)
    # 0.06 leg lengths: ankle-joint height above the floor plus the pelvis origin above the hip-joint centres.
    return 0.06 * leg_length_m + thigh * np.cos(thigh_angle) + shank * np.cos(shank_angle)


def standing_pose(leg_length_m: float, crouch_knee: float = 0.0, trunk_flexion: float = 0.0) -> np.ndarray:
    """Quiet standing, shape (33,): degrees and meters, heading 0 at the origin."""
    pose = np.zeros(N_COORDS)
    hip = 3.0 + 0.7 * crouch_knee + 0.3 * trunk_flexion
    knee = 3.0 + crouch_knee
    tilt = -2.0 - 0.3 * trunk_flexion
    for side in ("r", "l"):
        pose[IDX[f"hip_flexion_{side}"]] = hip
        pose[IDX[f"knee_angle_{side}"]] = knee
        pose[IDX[f"ankle_angle_{side}"]] = 2.0 + 0.4 * crouch_knee
        pose[IDX[f"hip_adduction_{side}"]] = -1.0
        pose[IDX[f"subtalar_angle_{side}"]] = 2.0
        pose[IDX[f"arm_flex_{side}"]] = -2.0 + 0.5 * trunk_flexion
        pose[IDX[f"arm_add_{side}"]] = -10.0
        pose[IDX[f"arm_rot_{side}"]] = 5.0
        pose[IDX[f"elbow_flex_{side}"]] = 14.0
        pose[IDX[f"pro_sup_{side}"]] = 10.0
    pose[IDX["pelvis_tilt"]] = tilt
    pose[IDX["lumbar_extension"]] = -0.7 * trunk_flexion
    pose[IDX["pelvis_ty"]] = pelvis_height(leg_length_m, hip, knee, tilt)
    return pose


def seated_pose(leg_length_m: float) -> np.ndarray:
    """Sitting upright on a chair whose seat is at knee height."""
    pose = standing_pose(leg_length_m)
    for side in ("r", "l"):
        pose[IDX[f"hip_flexion_{side}"]] = 82.0
        pose[IDX[f"knee_angle_{side}"]] = 88.0
        pose[IDX[f"ankle_angle_{side}"]] = 6.0
        pose[IDX[f"hip_adduction_{side}"]] = -3.0
        pose[IDX[f"arm_flex_{side}"]] = 18.0
        pose[IDX[f"elbow_flex_{side}"]] = 55.0
    pose[IDX["pelvis_tilt"]] = 8.0
    pose[IDX["lumbar_extension"]] = -6.0
    pose[IDX["pelvis_ty"]] = 0.5 * leg_length_m + 0.08
    pose[IDX["pelvis_tx"]] = -0.18  # the pelvis sits behind the feet; standing up carries it forward
    return pose


def smooth_keyframes(t: np.ndarray, times: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Smoothstep interpolation of keyframe poses `(K, C)` at `times` (increasing) -> `(len(t), C)`.

    Held constant before the first and after the last keyframe; zero velocity at every keyframe, as in a movement
    that stops between phases (sit, stand, squat depth).
    """
    times = np.asarray(times, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    seg = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    span = np.maximum(times[seg + 1] - times[seg], 1e-9)
    s = np.clip((t - times[seg]) / span, 0.0, 1.0)
    w = (s * s * (3.0 - 2.0 * s))[:, None]
    return poses[seg] * (1.0 - w) + poses[seg + 1] * w


def _smoothstep(x: np.ndarray, a: float, b: float) -> np.ndarray:
    s = np.clip((x - a) / (b - a), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _swing_window(psi: np.ndarray, stance: float) -> np.ndarray:
    """1 in mid swing, 0 in stance, smooth edges; psi is the template phase (stance ends at `stance`)."""
    return _smoothstep(psi, stance - 0.03, stance + 0.08) * (1.0 - _smoothstep(psi, 0.90, 1.0))


def _warp(x: np.ndarray, stance: float, template_stance: float) -> np.ndarray:
    """Maps a leg's own phase (stance ends at `stance`) to the template's phase (stance ends at `template_stance`)."""
    return np.where(x < stance, x * template_stance / stance,
                    template_stance + (x - stance) * (1.0 - template_stance) / (1.0 - stance))


def _keypoint_template(points: dict[str, list[tuple[float, float]]]) -> dict[str, np.ndarray]:
    """Fourier coefficients (6 harmonics) of periodic curves given as (phase, degrees) keypoints."""
    grid = np.arange(100) / 100
    out = {}
    for name, pts in points.items():
        ph = np.array([p for p, _ in pts] + [pts[0][0] + 1.0])
        val = np.array([v for _, v in pts] + [pts[0][1]])
        curve = np.interp(grid, ph, val, period=None)
        spectrum = np.fft.rfft(curve) / 100
        k = 6
        out[name] = np.concatenate([[spectrum[0].real], 2 * spectrum[1:k + 1].real, -2 * spectrum[1:k + 1].imag])
    return out


@lru_cache(maxsize=1)
def _templates() -> dict[str, dict[str, np.ndarray]]:
    templates = dict(load_cycle_templates())
    # Stair gait is not in the reference recordings: keypoints from the stair literature (Riener et al. 2002,
    # Protopapadaki et al. 2007), sagittal plane; other coordinates follow level walking.
    templates["stairs_up"] = {**templates["walking"], **_keypoint_template({
        "hip_flexion": [(0.0, 60), (0.15, 50), (0.45, 12), (0.62, 8), (0.8, 55), (0.92, 66)],
        "knee_angle": [(0.0, 58), (0.12, 55), (0.4, 14), (0.6, 10), (0.74, 85), (0.82, 95), (0.93, 75)],
        "ankle_angle": [(0.0, 10), (0.2, 15), (0.5, 6), (0.62, -14), (0.75, 4), (0.9, 12)],
    })}
    templates["stairs_down"] = {**templates["walking"], **_keypoint_template({
        "hip_flexion": [(0.0, 10), (0.3, 12), (0.55, 25), (0.75, 38), (0.9, 25)],
        "knee_angle": [(0.0, 12), (0.2, 40), (0.45, 75), (0.62, 90), (0.76, 95), (0.9, 35)],
        "ankle_angle": [(0.0, -20), (0.15, 5), (0.45, 20), (0.62, 25), (0.8, -10), (0.93, -22)],
    })}
    return templates


def _coefficients(template: str, name: str, crouch: float) -> np.ndarray:
    base = _templates()[template][name]
    if crouch > 0 and template == "walking":
        return (1.0 - crouch) * base + crouch * _templates()["crouch"][name]
    return base


def _template_value(template: str, name: str, psi: np.ndarray, crouch: float = 0.0) -> np.ndarray:
    if name not in _templates()[template]:
        template = "walking"
    return evaluate_fourier(_coefficients(template, name, crouch), psi)


def _leg_pattern(spec: GaitSpec, mod: LegMod, own_phase: np.ndarray, gain: np.ndarray, speed_scale: float):
    """The seven leg coordinates for one side, degrees; `own_phase` in [0, 1) from this leg's foot contact."""
    tpl = spec.template
    ref_stance = _TEMPLATE_STANCE.get(tpl, 0.6)
    stance = ref_stance if mod.stance_fraction is None else mod.stance_fraction
    psi = _warp(own_phase, stance, ref_stance) if stance != ref_stance else own_phase
    swing = _swing_window(psi, ref_stance)
    crouch = mod.crouch if tpl == "walking" else 0.0
    # The crouch recordings are already slow walking: scale excursions with speed only for the normal share.
    speed_scale = 1.0 + (speed_scale - 1.0) * (1.0 - crouch)

    hip = _template_value(tpl, "hip_flexion", psi, crouch)
    hip_mean = _coefficients(tpl, "hip_flexion", crouch)[0]
    hip = hip_mean + (hip - hip_mean) * mod.hip_scale * speed_scale * gain + mod.hip_offset
    hip += mod.swing_hip_lift * swing

    knee = _template_value(tpl, "knee_angle", psi, crouch)
    grid = np.linspace(0, 1, 50, endpoint=False)
    knee_min = float(evaluate_fourier(_coefficients(tpl, "knee_angle", crouch), grid).min())
    knee_scale = mod.knee_stance_scale * (1.0 - swing) + mod.knee_swing_scale * swing
    knee = knee_min + (knee - knee_min) * knee_scale * (0.75 + 0.25 * speed_scale) * gain + mod.knee_offset
    knee = np.maximum(knee, -4.0)

    ankle = _template_value(tpl, "ankle_angle", psi, crouch)
    ankle = ankle.mean() + (ankle - ankle.mean()) * mod.ankle_scale * gain + mod.ankle_offset
    ankle -= mod.ankle_swing_drop * swing

    adduction = _template_value(tpl, "hip_adduction", psi, crouch) - mod.circumduction * swing
    adduction += mod.hip_adduction_offset
    rotation = _template_value(tpl, "hip_rotation", psi, crouch) + mod.hip_rotation_offset
    # Subtalar and metatarsophalangeal patterns are absent from the recordings: typical curves from gait texts
    # (inversion in swing, toe dorsiflexion at push-off).
    subtalar = 3.0 + 4.0 * np.sin(2 * np.pi * (psi - 0.15)) * mod.ankle_scale
    mtp = 25.0 * mod.mtp_scale * np.exp(-0.5 * ((psi - (ref_stance - 0.04)) / 0.05) ** 2)
    return hip, adduction, rotation, knee, ankle, subtalar, mtp, swing


def gait_pattern(phase: np.ndarray, spec: GaitSpec, leg_length_m: float, stride_gain: np.ndarray | None = None
                 ) -> np.ndarray:
    """The gait pattern at right-leg phase `phase` (cycles, unbounded), shape (frames, 33), degrees and meters.

    Pelvis translations are left at 0 except `pelvis_ty`, which holds the vertical oscillation about the walking
    height. Heading is 0 (the caller adds the path).
    """
    n = phase.shape[0]
    out = np.zeros((n, N_COORDS))
    gain = np.ones(n) if stride_gain is None else stride_gain
    rel_stride = spec.stride_length_m / leg_length_m
    ref_rel = 1.45 if spec.template == "walking" else (2.5 if spec.template == "running" else 1.2)
    # Joint excursions grow with stride length, less than proportionally (hip ROM ~30 deg at 0.5 m/s, ~42 at 1.3).
    speed_scale = float(np.clip(rel_stride / ref_rel, 0.3, 1.6)) ** 0.5
    if spec.template not in ("walking", "running"):
        speed_scale = float(np.clip(speed_scale, 0.8, 1.1))

    right_phase = np.mod(phase, 1.0)
    left_phase = np.mod(phase - spec.left_phase, 1.0)
    swings = {}
    for side, own, mod in (("r", right_phase, spec.right), ("l", left_phase, spec.left)):
        values = _leg_pattern(spec, mod, own, gain, speed_scale)
        for name, v in zip(("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle",
                            "subtalar_angle", "mtp_angle"), values[:7]):
            out[:, IDX[f"{name}_{side}"]] = v
        swings[side] = values[7]

    tpl = spec.template if spec.template in ("walking", "running") else "walking"
    crouch = 0.5 * (spec.right.crouch + spec.left.crouch) if tpl == "walking" else 0.0
    # Pelvis: the templates are symmetric, so evaluating at the right-leg phase gives both sides' contribution.
    tilt = _template_value(tpl, "pelvis_tilt", right_phase, crouch)
    lst = _template_value(tpl, "pelvis_list", right_phase, crouch) * spec.pelvis_list_scale * gain
    rot = _template_value(tpl, "pelvis_rotation", right_phase, crouch) * spec.pelvis_rotation_scale
    rot = rot * speed_scale * gain
    # Positive pelvis_list lowers the right side (OpenSim rotation about the forward axis); a hike raises it.
    lst += -spec.hike_right * swings["r"] + spec.hike_left * swings["l"]
    out[:, IDX["pelvis_tilt"]] = tilt + spec.pelvis_tilt_offset - 0.3 * spec.trunk_flexion
    out[:, IDX["pelvis_list"]] = lst
    out[:, IDX["pelvis_rotation"]] = rot
    # Anterior pelvic tilt from trunk flexion flexes the hips for the same thigh position.
    for side in ("r", "l"):
        out[:, IDX[f"hip_flexion_{side}"]] += 0.3 * spec.trunk_flexion - spec.pelvis_tilt_offset

    if spec.template == "running":
        out[:, IDX["pelvis_ty"]] = (_template_value("running", "pelvis_ty", right_phase) - 0.96) * spec.vertical_scale
        out[:, IDX["lumbar_extension"]] = _template_value("running", "lumbar_extension", right_phase)
        out[:, IDX["lumbar_bending"]] = _template_value("running", "lumbar_bending", right_phase)
        out[:, IDX["lumbar_rotation"]] = _template_value("running", "lumbar_rotation", right_phase)
    else:
        # Walking: the pelvis is highest in mid stance of either leg (twice per stride); 2-3 cm at normal speed.
        amplitude = 0.024 * leg_length_m / 0.9 * speed_scale * (1.0 - 0.5 * crouch) * spec.vertical_scale
        out[:, IDX["pelvis_ty"]] = amplitude * np.cos(4 * np.pi * (right_phase - 0.3))
        # Trunk on pelvis: the lumbar spine keeps the thorax upright against pelvic obliquity and counter-rotates.
        out[:, IDX["lumbar_extension"]] = 1.5 * np.cos(4 * np.pi * (right_phase - 0.1))
        out[:, IDX["lumbar_bending"]] = -0.6 * lst
        out[:, IDX["lumbar_rotation"]] = -0.7 * rot
    out[:, IDX["lumbar_extension"]] -= 0.7 * spec.trunk_flexion
    stance_r = 1.0 - swings["r"]
    stance_l = 1.0 - swings["l"]
    # Positive lumbar_bending leans the trunk to the right.
    out[:, IDX["lumbar_bending"]] += spec.trunk_lean_right_stance * stance_r * (1 - stance_l * 0.5)
    out[:, IDX["lumbar_bending"]] -= spec.trunk_lean_left_stance * stance_l * (1 - stance_r * 0.5)

    _arms(out, spec, right_phase, left_phase, gain, speed_scale)
    return out


def _arms(out: np.ndarray, spec: GaitSpec, right_phase, left_phase, gain, speed_scale) -> None:
    running = spec.template == "running"
    for side, own, swing in (("r", right_phase, spec.arm_swing_right), ("l", left_phase, spec.arm_swing_left)):
        extra_elbow = spec.elbow_right if side == "r" else spec.elbow_left
        if running:
            flex = _template_value("running", "arm_flex", own)
            flex = flex.mean() + (flex - flex.mean()) * swing * gain
            elbow = _template_value("running", "elbow_flex", own)
            add = _template_value("running", "arm_add", own)
            rot = _template_value("running", "arm_rot", own)
            prosup = _template_value("running", "pro_sup", own)
        else:
            # The arm swings forward as the opposite leg does: peak shoulder flexion near opposite foot contact.
            # Amplitude grows with speed (about +-12 degrees at 1.3 m/s).
            wave = np.cos(2 * np.pi * (own - 0.45))
            amp = 12.0 * speed_scale * swing * gain
            flex = -4.0 + amp * wave
            elbow = 18.0 + 0.5 * amp * wave
            add = -10.0 + 1.5 * wave
            rot = np.full_like(own, 5.0)
            prosup = np.full_like(own, 10.0)
        out[:, IDX[f"arm_flex_{side}"]] = flex
        out[:, IDX[f"elbow_flex_{side}"]] = elbow + extra_elbow
        out[:, IDX[f"arm_add_{side}"]] = add
        out[:, IDX[f"arm_rot_{side}"]] = rot
        out[:, IDX[f"pro_sup_{side}"]] = prosup
    mode = spec.arm_mode
    if mode == "walker":
        # Both hands on the frame: shoulders flexed, elbows bent, almost still.
        for side, own in (("r", right_phase), ("l", left_phase)):
            out[:, IDX[f"arm_flex_{side}"]] = 32.0 + 2.0 * np.cos(2 * np.pi * own)
            out[:, IDX[f"elbow_flex_{side}"]] = 35.0 + 2.0 * np.cos(2 * np.pi * own)
            out[:, IDX[f"arm_add_{side}"]] = -6.0
    elif mode == "crutches":
        # Crutch gait: both crutches are planted together once per stride, so the arms move in phase.
        wave = np.cos(2 * np.pi * (right_phase - 0.85))
        for side in ("r", "l"):
            out[:, IDX[f"arm_flex_{side}"]] = 14.0 + 16.0 * wave
            out[:, IDX[f"elbow_flex_{side}"]] = 18.0 + 6.0 * wave
            out[:, IDX[f"arm_add_{side}"]] = -14.0
    elif mode in ("cane_right", "cane_left"):
        side = "r" if mode == "cane_right" else "l"
        other_phase = left_phase if side == "r" else right_phase  # the cane moves with the opposite (affected) leg
        wave = np.cos(2 * np.pi * (other_phase - 0.88))
        out[:, IDX[f"arm_flex_{side}"]] = 8.0 + 10.0 * wave
        out[:, IDX[f"elbow_flex_{side}"]] = 28.0 + 2.0 * wave
        out[:, IDX[f"arm_add_{side}"]] = -14.0
    elif mode == "balance":
        # Arms held out to the sides for balance (tandem walking).
        for side in ("r", "l"):
            out[:, IDX[f"arm_add_{side}"]] = -35.0 + 3.0 * np.cos(2 * np.pi * right_phase)
            out[:, IDX[f"elbow_flex_{side}"]] = 25.0


@dataclass
class Locomotion:
    """Per-frame drive of the gait layer.

    weight: 0 = base posture only, 1 = full gait pattern; phase advances with it. progress: share of the stride
    length that moves the pelvis forward (0 = stepping in place). heading_deg: walking direction.
    """

    weight: np.ndarray
    progress: np.ndarray
    heading_deg: np.ndarray


def compose_locomotion(rng: np.random.Generator, base: np.ndarray, drive: Locomotion, spec: GaitSpec | None,
                       leg_length_m: float, fs: float, standing: np.ndarray, treadmill: bool = False,
                       start_phase: float | None = None) -> tuple[np.ndarray, dict]:
    """Combines a base-posture trajectory with the gait layer and the pelvis path.

    Returns the pose array (frames, 33) in the trial's local frame (heading 0 at the start, origin at the start)
    and the realised generator values: strides, distance, mean stride time and length over the active window.
    """
    n = base.shape[0]
    pose = base.copy()
    info: dict = {"distance_m": 0.0, "walking_time_s": 0.0, "phase_span": 0.0}
    if spec is not None and float(drive.weight.max()) > 0:
        walk_time = np.concatenate([[0.0], np.cumsum(drive.weight[1:] + drive.weight[:-1]) * 0.5 / fs])
        n_strides = int(walk_time[-1] / spec.stride_time_s) + 4
        z = rng.standard_normal(n_strides)
        z = np.convolve(z, [0.6, 0.8], mode="same") / 1.0  # neighbouring strides correlate a little
        stride_times = spec.stride_time_s * np.clip(1.0 + spec.stride_cv * z, 0.6, 1.6)
        length_z = 0.6 * z + 0.8 * rng.standard_normal(n_strides)
        stride_lengths = spec.stride_length_m * np.clip(1.0 + spec.stride_cv * length_z, 0.5, 1.6)
        if treadmill:
            stride_lengths = spec.speed_m_s * stride_times  # the belt sets the speed
        gains = np.clip(1.0 + spec.amplitude_cv * rng.standard_normal(n_strides), 0.7, 1.3)
        phase0 = rng.uniform(0, 1) if start_phase is None else start_phase
        boundaries = np.concatenate([[0.0], np.cumsum(stride_times)]) - phase0 * stride_times[0]
        phase = np.interp(walk_time, boundaries, np.arange(n_strides + 1, dtype=np.float64))
        stride_gain = np.interp(phase, np.arange(n_strides) + 0.5, gains)
        gait = gait_pattern(phase, spec, leg_length_m, stride_gain)
        w = drive.weight[:, None]
        ty = IDX["pelvis_ty"]
        angles = np.ones(N_COORDS, dtype=bool)
        angles[[IDX["pelvis_tx"], ty, IDX["pelvis_tz"]]] = False
        pose[:, angles] += w * (gait[:, angles] - standing[angles])
        walking_height = pelvis_height(leg_length_m, 0.5 * (gait[:, IDX["hip_flexion_r"]] + gait[:, IDX[
            "hip_flexion_l"]]).mean(), min(gait[:, IDX["knee_angle_r"]].min(), gait[:, IDX["knee_angle_l"]].min()) + 6)
        target_ty = walking_height + gait[:, ty]
        pose[:, ty] += drive.weight * (target_ty - standing[ty])
        # Distance along the path follows the phase: each stride covers its own stride length.
        cumulative = np.concatenate([[0.0], np.cumsum(stride_lengths)])
        dist = np.interp(phase, np.arange(n_strides + 1), cumulative)
        # Within a stride the body speeds up and slows down twice (about +-5 % in walking).
        fluct = 0.05 if spec.template != "running" else 0.03
        dist = dist + fluct * spec.stride_length_m / (4 * np.pi) * np.sin(4 * np.pi * phase) * drive.weight
        step = np.diff(dist, prepend=dist[0]) * drive.progress
        active = drive.weight > 0.999
        info.update(
            phase=phase,
            stride_times=stride_times,
            stride_lengths=stride_lengths,
            walking_time_s=float(walk_time[-1]),
            phase_span=float(phase[-1] - phase[0]),
            distance_m=float(step.sum()) if not treadmill else 0.0,
            active_fraction=float(active.mean()),
        )
        if treadmill:
            step = np.zeros_like(step)
    else:
        step = np.zeros(n)
    heading = np.radians(drive.heading_deg)
    pose[:, IDX["pelvis_tx"]] += np.cumsum(step * np.cos(heading))
    pose[:, IDX["pelvis_tz"]] += np.cumsum(-step * np.sin(heading))
    pose[:, IDX["pelvis_rotation"]] += drive.heading_deg
    return pose, info


def smooth_noise(rng: np.random.Generator, n: int, sd: np.ndarray, fs: float, cutoff_hz: float = 4.0) -> np.ndarray:
    """Low-pass Gaussian noise (frames, len(sd)) with the given standard deviations: pose-estimation jitter is
    correlated over a few frames after a video pipeline's filtering, not white."""
    from scipy.signal import lfilter

    alpha = float(np.exp(-2 * np.pi * cutoff_hz / fs))
    white = rng.standard_normal((n + 30, sd.shape[0]))
    filtered = lfilter([1 - alpha], [1, -alpha], white, axis=0)
    filtered = lfilter([1 - alpha], [1, -alpha], filtered, axis=0)[30:]
    # Variance of a twice-applied one-pole filter driven by unit white noise.
    gain = (1 - alpha) ** 2 * (1 + alpha**2) / (1 - alpha**2) ** 3
    return filtered / np.sqrt(gain) * sd


def with_changes(spec: GaitSpec, **changes) -> GaitSpec:
    return replace(spec, **changes)
