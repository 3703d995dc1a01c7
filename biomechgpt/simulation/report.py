"""Realism report: simulated gait next to the real reference recordings.

Three comparisons, each a mean gait cycle per coordinate (right foot contact to right foot contact, 101 points):
- `walking`: healthy participants' self-selected overground walking vs `normal.mot` (and `subject01_walk1_ik.mot`
  for the joints it has, as `walking_subject01`);
- `crouch`: cerebral palsy with severe crouch vs the mean of `crouch1-4.mot`;
- `running`: running trials vs the cycles of `subject02_running_ik.mot`;
- `treadmill_walking`: healthy participants' treadmill walking vs the 12 walking files of
  `treadmill_walking_expert3/` (when that folder is there), arms and lumbar included, with the cadence of each side
  (from the knee angles' period) beside the joint curves.
Simulated and real cycles are cut by the same contact detector (`ground_truth.foot_contacts`), so the phase of the
comparison does not depend on how either was made. Per coordinate: mean, range of motion (ROM), RMS difference of
the mean cycles and their correlation, in degrees. Written as `report.json` plus one PNG per comparison.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from biomechgpt.processing.motion import CANONICAL_COORDINATES, CANONICAL_FRAME_RATE
from biomechgpt.simulation.activities import TrialPlan, synthesize_trial
from biomechgpt.simulation.ground_truth import foot_contacts
from biomechgpt.simulation.participants import draw_participant

__all__ = ["realism_report", "default_reference_dir", "mean_cycle", "REPORT_COORDINATES"]

_I = {name: i for i, name in enumerate(CANONICAL_COORDINATES)}
REPORT_COORDINATES = ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "hip_flexion_r", "hip_adduction_r",
                      "hip_rotation_r", "knee_angle_r", "ankle_angle_r", "lumbar_extension", "arm_flex_r",
                      "elbow_flex_r")
_POINTS = 101
TREADMILL_FOLDER = "treadmill_walking_expert3"


def default_reference_dir() -> Path | None:
    """`$BIOMECHGPT_REFERENCE_MOTION`, else `../shared/reference_motion` beside the project or the working folder."""
    candidates = []
    if os.environ.get("BIOMECHGPT_REFERENCE_MOTION"):
        candidates.append(Path(os.environ["BIOMECHGPT_REFERENCE_MOTION"]))
    candidates += [Path(__file__).resolve().parents[3] / "shared" / "reference_motion",
                   Path.cwd().parent / "shared" / "reference_motion", Path.cwd() / "shared" / "reference_motion"]
    return next((c for c in candidates if (c / "normal.mot").is_file()), None)


def mean_cycle(motions: list[np.ndarray], frame_rate: float = CANONICAL_FRAME_RATE, unwrap_heading: bool = True,
               allow_partial: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and SD gait cycle (101, 33) in degrees (meters for translations) over all right-contact cycles.

    `pelvis_rotation` is taken relative to each cycle's mean, which removes the walking direction. With
    `allow_partial`, a clip holding one right and one left contact but no full cycle (a lab pass) still gives one
    cycle: its frames are placed by phase from the right contact, with the stride taken as twice the step.
    """
    cycles = []
    grid = np.linspace(0.0, 1.0, _POINTS)
    for values in motions:
        right, left = foot_contacts(values, frame_rate)
        t = np.arange(values.shape[0]) / frame_rate
        for a, b in zip(right[:-1], right[1:]):
            cycle = np.stack([np.interp(a + grid * (b - a), t, values[:, i]) for i in range(values.shape[1])], axis=1)
            cycles.append(cycle)
        if allow_partial and len(right) == 1 and len(left) >= 1:
            stride = 2.0 * abs(left[0] - right[0])
            phase = np.mod((t - right[0]) / stride, 1.0)
            if t[-1] - t[0] >= 0.9 * stride:
                order = np.argsort(phase)
                cycle = np.stack([np.interp(grid, phase[order], values[order, i], period=1.0)
                                  for i in range(values.shape[1])], axis=1)
                cycles.append(cycle)
    if not cycles:
        return np.full((_POINTS, len(CANONICAL_COORDINATES)), np.nan), np.full((_POINTS, 33), np.nan), 0
    stack = np.stack(cycles)
    angles = np.ones(stack.shape[2], dtype=bool)
    angles[[_I["pelvis_tx"], _I["pelvis_ty"], _I["pelvis_tz"]]] = False
    stack[:, :, angles] = np.degrees(stack[:, :, angles])
    if unwrap_heading:
        stack[:, :, _I["pelvis_rotation"]] -= stack[:, :, _I["pelvis_rotation"]].mean(axis=1, keepdims=True)
    return stack.mean(axis=0), stack.std(axis=0), len(cycles)


def _tiled(values: np.ndarray, times: int = 4) -> np.ndarray:
    """A time-normalised single cycle repeated, so the contact detector sees whole cycles on both sides."""
    return np.concatenate([values[:-1]] * times + [values[-1:]], axis=0)


def _reference(reference_dir: Path, name: str):
    from biomechgpt.motion_io import load_motion

    motion = load_motion(reference_dir / name)
    return motion.values.astype(np.float64), motion.mask


def _simulated(kind: str, seed: int, n_participants: int) -> list[np.ndarray]:
    motions = []
    for index in range(n_participants):
        rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(index, 7)))
        if kind == "walking":
            person = draw_participant(index, seed, diagnosis="healthy", max_age=60)
            plan = TrialPlan("walking", "self_selected", protocol="overground", duration_s=12.0)
        elif kind == "crouch":
            person = draw_participant(index, seed, diagnosis="cerebral_palsy", severity=float(rng.uniform(0.75, 1.0)))
            person.affected_side = "bilateral"
            person.assistive_device = "none"
            plan = TrialPlan("walking", "self_selected", protocol="overground", duration_s=12.0)
        elif kind == "treadmill_walking":
            person = draw_participant(index, seed, diagnosis="healthy", max_age=60)
            plan = TrialPlan("walking", "self_selected", treadmill=True, protocol="treadmill", duration_s=20.0)
        else:
            person = draw_participant(index, seed, diagnosis="healthy", max_age=40)
            plan = TrialPlan("running", treadmill=True, protocol="treadmill", duration_s=10.0)
        motions.append(synthesize_trial(person, plan, rng).values.astype(np.float64))
    return motions


def _cohort_samples(cohort_dir: Path) -> dict[str, list[np.ndarray]]:
    from biomechgpt.cohort import load_cohort

    cohort = load_cohort(cohort_dir)
    trials = cohort.trials.merge(cohort.participants[["participant_id", "diagnosis", "severity"]],
                                 on="participant_id")
    walking = trials[(trials.activity == "walking") & (trials.diagnosis == "healthy")
                     & (trials.speed_condition == "self_selected") & (trials.n_frames > 90)]
    crouch = trials[(trials.activity == "walking") & (trials.diagnosis == "cerebral_palsy")
                    & (trials.severity > 0.7) & (trials.n_frames > 90)]
    running = trials[trials.activity == "running"]
    treadmill = trials[(trials.activity == "walking") & (trials.diagnosis == "healthy") & trials.treadmill]
    out = {}
    for name, rows in (("walking", walking), ("crouch", crouch), ("running", running),
                       ("treadmill_walking", treadmill)):
        out[name] = [m.values.astype(np.float64) for _, m in cohort.iter_motions(rows["trial_id"].head(200))]
    return out


def _cadences(motions: list[np.ndarray]) -> dict[str, float | int | None]:
    """Median and 10-90% range of the knee-period cadence (steps/min) over recordings of at least 3 s of gait."""
    from biomechgpt.evaluation.evaluate import knee_period_cadence
    from biomechgpt.processing.motion import Motion

    found = [knee_period_cadence(Motion(list(CANONICAL_COORDINATES), v, CANONICAL_FRAME_RATE)) for v in motions]
    found = [c for c in found if c is not None]
    if not found:
        return {"n": 0, "median": None, "p10": None, "p90": None}
    return {"n": len(found), "median": round(float(np.median(found)), 1),
            "p10": round(float(np.percentile(found, 10)), 1), "p90": round(float(np.percentile(found, 90)), 1)}


def _compare(sim_mean: np.ndarray, sim_sd: np.ndarray, ref_mean: np.ndarray, coordinates) -> dict:
    result = {}
    for name in coordinates:
        i = _I[name]
        s, r = sim_mean[:, i], ref_mean[:, i]
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(r))):
            continue
        corr = float(np.corrcoef(s, r)[0, 1]) if np.std(s) > 1e-9 and np.std(r) > 1e-9 else float("nan")
        result[name] = {
            "mean_simulated_deg": round(float(s.mean()), 2),
            "mean_reference_deg": round(float(r.mean()), 2),
            "rom_simulated_deg": round(float(np.ptp(s)), 2),
            "rom_reference_deg": round(float(np.ptp(r)), 2),
            "rms_difference_deg": round(float(np.sqrt(np.mean((s - r) ** 2))), 2),
            "rms_difference_demeaned_deg": round(float(np.sqrt(np.mean(((s - s.mean()) - (r - r.mean())) ** 2))), 2),
            "correlation": round(corr, 3),
            "between_cycle_sd_simulated_deg": round(float(sim_sd[:, i].mean()), 2),
        }
    return result


def _plot(path: Path, title: str, sim_mean, sim_sd, ref_mean, coordinates, n_sim: int, ref_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows = int(np.ceil(len(coordinates) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    x = np.linspace(0, 100, _POINTS)
    for ax, name in zip(axes.ravel(), coordinates):
        i = _I[name]
        ax.fill_between(x, sim_mean[:, i] - sim_sd[:, i], sim_mean[:, i] + sim_sd[:, i], color="tab:blue", alpha=0.25)
        ax.plot(x, sim_mean[:, i], color="tab:blue", label=f"simulated ({n_sim} cycles)")
        ax.plot(x, ref_mean[:, i], color="black", linestyle="--", label=ref_label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("% gait cycle", fontsize=8)
        ax.set_ylabel("degrees", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(coordinates):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def realism_report(out: str | Path, reference_dir: str | Path | None = None, cohort_dir: str | Path | None = None,
                   seed: int = 0, n_participants: int = 30, overwrite: bool = False) -> dict:
    """Writes `report.json` and PNG plots comparing simulated and real gait cycles; returns the report dict.

    Args:
        out: folder for the report (created; must be empty unless `overwrite`).
        reference_dir: the real recordings (default: `default_reference_dir()`).
        cohort_dir: compare an existing cohort's trials; by default a fresh sample of `n_participants` per
            comparison is simulated with `seed`.
    """
    out = Path(out)
    ref_dir = Path(reference_dir) if reference_dir is not None else default_reference_dir()
    if ref_dir is None or not (ref_dir / "normal.mot").is_file():
        raise ValueError(f"{ref_dir or '../shared/reference_motion'}: reference recordings not found "
                         "(pass --reference DIR or set BIOMECHGPT_REFERENCE_MOTION)")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out}: folder exists and is not empty (pass --overwrite)")
    out.mkdir(parents=True, exist_ok=True)

    references = {
        "walking": [_tiled(_reference(ref_dir, "normal.mot")[0])],
        "crouch": [_tiled(_reference(ref_dir, f"crouch{i}.mot")[0]) for i in range(1, 5)],
        "running": [_reference(ref_dir, "subject02_running_ik.mot")[0]],
    }
    ref_masks = {"walking": _reference(ref_dir, "normal.mot")[1], "crouch": _reference(ref_dir, "crouch1.mot")[1],
                 "running": _reference(ref_dir, "subject02_running_ik.mot")[1]}
    labels = {"walking": "normal.mot", "crouch": "crouch1-4.mot (mean)", "running": "subject02_running_ik.mot"}
    treadmill_files = sorted((ref_dir / TREADMILL_FOLDER).glob("S01DE5*.mot"))
    treadmill_files = [f for f in treadmill_files if f.name != "S01DE503.mot"]  # holds other movements too
    if treadmill_files:
        loaded = [_reference(ref_dir / TREADMILL_FOLDER, f.name) for f in treadmill_files]
        references["treadmill_walking"] = [values for values, _ in loaded]
        ref_masks["treadmill_walking"] = loaded[0][1]
        labels["treadmill_walking"] = f"{TREADMILL_FOLDER}/ ({len(loaded)} files)"
    if cohort_dir is not None:
        samples = _cohort_samples(Path(cohort_dir))
    else:
        samples = {kind: _simulated(kind, seed, n_participants) for kind in references}

    report: dict = {"reference_dir": str(ref_dir), "source": str(cohort_dir) if cohort_dir else
                    f"simulated sample, seed {seed}, {n_participants} participants per comparison",
                    "units": "degrees; phase 0-100 % from right foot contact", "comparisons": {}, "cycles": {}}
    extra = {}
    walk01, mask01 = _reference(ref_dir, "subject01_walk1_ik.mot")
    extra["walking_subject01"] = ("walking", [walk01], mask01, "subject01_walk1_ik.mot")
    for kind, (sim_kind, ref_values, mask, label) in {
        **{k: (k, references[k], ref_masks[k], labels[k]) for k in references}, **extra
    }.items():
        sim_mean, sim_sd, n_sim = mean_cycle(samples[sim_kind])
        ref_mean, _, n_ref = mean_cycle(ref_values, allow_partial=True)
        coordinates = [c for c in REPORT_COORDINATES if mask[_I[c]] and not (
            kind not in ("running", "treadmill_walking") and c in ("lumbar_extension", "arm_flex_r", "elbow_flex_r"))]
        report["comparisons"][kind] = _compare(sim_mean, sim_sd, ref_mean, coordinates)
        report["cycles"][kind] = {"simulated": n_sim, "reference": n_ref}
        if kind == "treadmill_walking":
            report["cadence"] = {kind: {"simulated": _cadences(samples[sim_kind]),
                                        "reference": _cadences(ref_values)}}
        _plot(out / f"{kind}.png", f"{kind}: simulated vs {label}", sim_mean, sim_sd, ref_mean, coordinates, n_sim,
              label)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report
