"""The simulated cohort: labels, ground truth vs generator, determinism, splits, clinical patterns, bad arguments."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from biomechgpt import cli
from biomechgpt.labels import ACTIVITIES, AFFECTED_SIDES, ASSISTIVE_DEVICES, DIAGNOSES, SPLITS, WALKING_SPEEDS
from biomechgpt.processing.motion import ARM_COORDINATES, CANONICAL_COORDINATES, LUMBAR_COORDINATES
from biomechgpt.simulation import simulate_cohort
from biomechgpt.simulation.activities import TrialPlan, synthesize_trial
from biomechgpt.simulation.ground_truth import gait_ground_truth
from biomechgpt.simulation.participants import IMPAIRED_SEVERITY, draw_participant

N_PARTICIPANTS = 16
COL = {name: i for i, name in enumerate(CANONICAL_COORDINATES)}


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    return simulate_cohort(tmp_path_factory.mktemp("sim") / "cohort", n_participants=N_PARTICIPANTS, seed=0,
                           workers=1)


@pytest.fixture(scope="module")
def tables(cohort_dir):
    return pd.read_parquet(cohort_dir / "participants.parquet"), pd.read_parquet(cohort_dir / "trials.parquet")


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_participant_labels_present_and_consistent(tables):
    people, _ = tables
    assert len(people) == N_PARTICIPANTS and people["participant_id"].is_unique
    assert set(people["diagnosis"]) <= set(DIAGNOSES)
    assert set(people["affected_side"]) <= set(AFFECTED_SIDES)
    assert set(people["assistive_device"]) <= set(ASSISTIVE_DEVICES)
    assert set(people["split"]) <= set(SPLITS) and set(people["sex"]) <= {"female", "male"}
    healthy = people["diagnosis"] == "healthy"
    assert (people.loc[healthy, "severity"] == 0).all() and (people.loc[healthy, "affected_side"] == "none").all()
    assert (people.loc[~healthy, "affected_side"] != "none").all()
    assert (people["impaired"] == (~healthy & (people["severity"] >= IMPAIRED_SEVERITY))).all()
    assert people["fall_probability"].between(0, 1, inclusive="neither").all()
    assert people["fall_history"].dtype == bool and people["impaired"].dtype == bool
    assert people["leg_length_m"].between(0.45 * people["height_m"], 0.6 * people["height_m"]).all()
    # Every participant does a Timed Up and Go and a 10-metre walk.
    assert people["tug_time_s"].notna().all() and people["ten_m_walk_speed_m_s"].notna().all()


def test_trial_labels_present_and_consistent(tables):
    people, trials = tables
    assert trials["trial_id"].is_unique and set(trials["activity"]) <= set(ACTIVITIES)
    walking = trials["activity"] == "walking"
    assert set(trials.loc[walking, "speed_condition"]) <= set(WALKING_SPEEDS)
    assert trials.loc[~walking, "speed_condition"].isna().all()
    gait = trials["activity"].isin(["walking", "running", "tandem_walking"])
    assert trials.loc[gait, ["cadence_steps_per_min", "walking_speed_m_s", "stride_length_m"]].notna().all().all()
    assert trials.loc[~gait, ["cadence_steps_per_min", "walking_speed_m_s", "stride_length_m"]].isna().all().all()
    timed = trials["activity"].isin(["timed_up_and_go", "four_square_step_test"])
    assert trials.loc[timed, "test_time_s"].notna().all() and trials.loc[~timed, "test_time_s"].isna().all()
    merged = trials.merge(people[["participant_id", "assistive_device", "severity"]], on="participant_id")
    walker = merged["assistive_device"] == "walker"
    assert not merged.loc[walker, "activity"].isin(["running", "jump", "four_square_step_test"]).any()
    assert not merged.loc[merged["severity"] > 0.3, "activity"].isin(["running", "jump"]).any()
    # Outcomes are the participant's own test trials.
    tug = trials[trials["activity"] == "timed_up_and_go"].groupby("participant_id")["test_time_s"].mean()
    np.testing.assert_allclose(people.set_index("participant_id").loc[tug.index, "tug_time_s"], tug)
    tmw = trials[trials["protocol"] == "ten_meter_walk"].groupby("participant_id")["walking_speed_m_s"].mean()
    np.testing.assert_allclose(people.set_index("participant_id").loc[tmw.index, "ten_m_walk_speed_m_s"], tmw)


def test_trial_lengths_range_from_one_stride_to_a_minute(tables):
    _, trials = tables
    assert trials["duration_s"].min() < 2.5
    assert trials["duration_s"].max() <= 65
    assert 150 < trials["duration_s"].sum() / N_PARTICIPANTS < 300  # ~30 h for 500 participants
    assert trials["treadmill"].any() and (~trials["has_arms"]).any() and (~trials["has_lumbar"]).any()


# Tolerances: long trials average many strides. A lab pass holds one to two strides, and tandem walking a few
# very variable ones, so their measured strides differ from the generator's mean over the clip by the
# stride-to-stride variability.
@pytest.mark.parametrize("column, gen_column", [
    ("cadence_steps_per_min", "gen_cadence_steps_per_min"),
    ("walking_speed_m_s", "gen_speed_m_s"),
    ("stride_length_m", "gen_stride_length_m"),
])
def test_gait_ground_truth_agrees_with_generator(tables, column, gen_column):
    _, trials = tables
    gait = trials[trials["activity"].isin(["walking", "running", "tandem_walking"])]
    rel = (gait[column] / gait[gen_column] - 1).abs()
    lab = gait["protocol"] == "lab_stride"
    tandem = gait["activity"] == "tandem_walking"
    steady = ~lab & ~tandem
    assert rel[steady].max() < 0.03, gait.loc[rel[steady].idxmax()].to_dict()
    assert rel[tandem].max() < 0.08
    assert rel[lab].quantile(0.9) < 0.08 and rel[lab].max() < 0.2


@pytest.mark.parametrize("activity, tolerance_s", [("timed_up_and_go", 0.5), ("four_square_step_test", 0.4)])
def test_test_times_measured_from_motion_agree_with_generator(tables, activity, tolerance_s):
    _, trials = tables
    rows = trials[trials["activity"] == activity]
    assert len(rows) >= N_PARTICIPANTS // 2
    assert (rows["test_time_s"] - rows["gen_test_time_s"]).abs().max() < tolerance_s


def test_timed_up_and_go_is_slower_when_impaired(tables):
    people, _ = tables
    healthy = people[people["diagnosis"] == "healthy"]["tug_time_s"]
    impaired = people[people["impaired"]]["tug_time_s"]
    assert healthy.between(5, 13).all() and impaired.mean() > healthy.mean() + 2


def test_same_seed_same_bytes_with_any_worker_count(cohort_dir, tmp_path):
    serial = simulate_cohort(tmp_path / "serial", n_participants=N_PARTICIPANTS, seed=0, workers=1,
                             participants_per_shard=5)
    parallel = simulate_cohort(tmp_path / "parallel", n_participants=N_PARTICIPANTS, seed=0, workers=2,
                               participants_per_shard=5)
    assert len(list((parallel / "motions").iterdir())) == 4
    assert _digest(parallel) == _digest(serial)
    # Sharding changes where motions are stored, not what was simulated.
    assert _digest(serial)["participants.parquet"] == _digest(cohort_dir)["participants.parquet"]
    other = simulate_cohort(tmp_path / "other", n_participants=N_PARTICIPANTS, seed=1, workers=1)
    assert _digest(other)["trials.parquet"] != _digest(cohort_dir)["trials.parquet"]


def test_held_out_fixes_the_validation_and_test_sizes_and_keeps_the_participants(tables, cohort_dir, tmp_path,
                                                                                   capsys):
    people, _ = tables
    out = tmp_path / "held"
    assert cli.main(["simulate", "--participants", "5", "--held-out", "1", "--out", str(out), "--quiet"]) == 0
    assert "train participants 3" in " ".join(capsys.readouterr().out.split())
    held = pd.read_parquet(out / "participants.parquet")
    assert held["split"].value_counts().to_dict() == {"train": 3, "validation": 1, "test": 1}
    trials = pd.read_parquet(out / "trials.parquet")
    assert (trials["split"] == trials["participant_id"].map(held.set_index("participant_id")["split"])).all()
    # only the split changes: the people are those of any other cohort of the seed
    pd.testing.assert_frame_equal(held.drop(columns="split"), people.drop(columns="split").head(5))
    meta = json.loads((out / "cohort.json").read_text())
    assert meta["held_out"] == 1 and meta["split_fractions"] == {"train": 0.6, "validation": 0.2, "test": 0.2}
    assert "held_out" not in json.loads((cohort_dir / "cohort.json").read_text())


def test_participants_do_not_depend_on_cohort_size(tables, tmp_path):
    people, _ = tables
    small = simulate_cohort(tmp_path / "small", n_participants=3, seed=0, workers=1)
    first = pd.read_parquet(small / "participants.parquet").drop(columns="split")
    pd.testing.assert_frame_equal(first, people.drop(columns="split").head(3))


def test_splits_are_participant_disjoint(tables):
    people, trials = tables
    groups = {s: set(people.loc[people["split"] == s, "participant_id"]) for s in SPLITS}
    assert all(groups.values())
    assert not (groups["train"] & groups["validation"] or groups["train"] & groups["test"]
                or groups["validation"] & groups["test"])
    split_of = people.set_index("participant_id")["split"]
    assert (trials["split"] == trials["participant_id"].map(split_of)).all()
    assert len(groups["validation"]) == len(groups["test"]) == round(0.15 * N_PARTICIPANTS)


def test_lower_body_trials_have_zero_masked_arms_and_treadmill_stays_in_place(cohort_dir, tables):
    from biomechgpt.cohort import load_cohort

    cohort = load_cohort(cohort_dir)
    _, trials = tables
    arms = [COL[c] for c in ARM_COORDINATES]
    row = trials[~trials["has_arms"]].iloc[0]
    motion = cohort.motion(row["trial_id"])
    assert not motion.mask[arms].any() and np.all(motion.values[:, arms] == 0)
    lumbar = [COL[c] for c in LUMBAR_COORDINATES]
    assert motion.mask[lumbar].all() == bool(row["has_lumbar"])
    for _, row in trials[trials["activity"] == "walking"].iterrows():
        m = cohort.motion(row["trial_id"])
        path = np.hypot(np.ptp(m.column("pelvis_tx")), np.ptp(m.column("pelvis_tz")))
        if row["treadmill"]:
            assert path < 0.1
        elif row["duration_s"] > 5:
            assert path > 2.0


def test_recording_artefacts_are_recorded_and_leave_the_ground_truth_alone(tables):
    from biomechgpt.simulation.recording import RECORDING_ARTEFACTS

    _, trials = tables
    seen = {name for names in trials["recording_artefacts"] for name in names.split(",") if name}
    assert seen <= set(RECORDING_ARTEFACTS) and {"locked_feet", "pelvis_frame"} <= seen
    assert (trials["recording_artefacts"] == "").mean() > 0.3  # most recordings stay clean
    # ground truth is measured on the movement, before the artefacts: it still matches the generator
    gait = trials[trials["activity"].isin(["walking", "running"]) & (trials["recording_artefacts"] != "")]
    close = np.isclose(gait["cadence_steps_per_min"], gait["gen_cadence_steps_per_min"], rtol=0.05)
    assert len(gait) and close.mean() > 0.9


def test_recording_artefacts_change_only_what_they_name():
    from biomechgpt.simulation.recording import apply_recording_artefacts

    person = draw_participant(3, 0, diagnosis="healthy", severity=None, max_age=60)
    trial = synthesize_trial(person, TrialPlan("walking", "self_selected", protocol="overground", duration_s=6.0),
                             np.random.default_rng(0))
    legs = [COL[c] for c in ("knee_angle_r", "knee_angle_l", "ankle_angle_r", "ankle_angle_l", "pelvis_tx",
                             "pelvis_rotation")]
    seen = set()
    for seed in range(60):
        values, applied = apply_recording_artefacts(trial.values, trial.mask, np.random.default_rng(seed))
        again, _ = apply_recording_artefacts(trial.values, trial.mask, np.random.default_rng(seed))
        assert values.dtype == trial.values.dtype and np.array_equal(values, again)
        np.testing.assert_array_equal(values[:, legs], trial.values[:, legs])  # never the sagittal leg motion
        changed = {c for c in CANONICAL_COORDINATES if not np.array_equal(values[:, COL[c]], trial.values[:, COL[c]])}
        if not applied:
            assert not changed
        if "arm_convention" in applied and "frozen_arm" not in applied:
            shift = np.degrees(values[:, COL["elbow_flex_r"]] - trial.values[:, COL["elbow_flex_r"]])
            assert np.ptp(shift) < 1e-3 and -10.5 < shift[0] < 135.5  # an offset, not a new movement
        if "locked_feet" in applied:
            assert np.ptp(values[:, COL["subtalar_angle_r"]]) == 0 and np.ptp(values[:, COL["mtp_angle_l"]]) == 0
        if not ({"arm_convention", "frozen_arm"} & set(applied)):
            assert not changed & set(ARM_COORDINATES)
        seen.update(applied)
    assert seen == {"locked_feet", "ground_tilt", "pelvis_frame", "arm_convention", "frozen_arm"}
    # a lower-body recording keeps its absent arms at zero
    lower = trial.values.copy()
    mask = trial.mask.copy()
    mask[[COL[c] for c in ARM_COORDINATES]] = False
    lower[:, ~mask] = 0.0
    for seed in range(30):
        values, _ = apply_recording_artefacts(lower, mask, np.random.default_rng(seed))
        assert np.all(values[:, ~mask] == 0)


def _walk(diagnosis, severity, n=6, device=None, side=None, **plan):
    """Self-selected walking of `n` participants with a pinned diagnosis; (participant, values) pairs."""
    out = []
    for i in range(n):
        person = draw_participant(100 + i, 5, diagnosis=diagnosis, severity=severity, max_age=70)
        if device is not None:
            person.assistive_device = device
        if side is not None:
            person.affected_side = side
        rng = np.random.default_rng(i)
        trial = synthesize_trial(person, TrialPlan("walking", "self_selected", protocol="overground",
                                                   duration_s=10.0, **plan), rng)
        out.append((person, np.degrees(trial.values.astype(np.float64))))
    return out


def _swing_knee_peak(values, side):
    return np.percentile(values[:, COL[f"knee_angle_{side}"]], 97)


def test_stroke_affected_knee_flexes_less_in_swing():
    healthy = np.mean([_swing_knee_peak(v, "l") for _, v in _walk("healthy", None, device="none")])
    stroke = _walk("stroke", 0.8, device="none", side="left")
    affected = np.mean([_swing_knee_peak(v, "l") for _, v in stroke])
    sound = np.mean([_swing_knee_peak(v, "r") for _, v in stroke])
    assert affected < healthy - 12 and affected < sound - 10


def test_parkinsons_shorter_strides_and_less_arm_swing():
    def measures(group):
        strides, swings = [], []
        for person, deg in group:
            gt = gait_ground_truth(np.radians(deg), 30.0)
            strides.append(gt["stride_length_m"] / person.leg_length_m)
            swings.append(np.ptp(deg[:, COL["arm_flex_r"]]) + np.ptp(deg[:, COL["arm_flex_l"]]))
        return np.mean(strides), np.mean(swings)

    h_stride, h_swing = measures(_walk("healthy", None, device="none"))
    pd_stride, pd_swing = measures(_walk("parkinsons_disease", 0.8, device="none"))
    assert pd_stride < 0.8 * h_stride and pd_swing < 0.6 * h_swing


def test_crouch_gait_keeps_the_knee_flexed_in_stance():
    healthy = np.mean([np.percentile(v[:, COL["knee_angle_r"]], 3) for _, v in _walk("healthy", None)])
    crouch = np.mean([np.percentile(v[:, COL["knee_angle_r"]], 3)
                      for _, v in _walk("cerebral_palsy", 0.9, device="none", side="bilateral")])
    assert healthy < 10 and crouch > 25


def test_prosthetic_ankle_is_stiff_and_walker_flexes_trunk():
    amputee = _walk("lower_limb_amputation", 0.5, device="none", side="right")
    prosthetic = np.mean([np.ptp(v[:, COL["ankle_angle_r"]]) for _, v in amputee])
    sound = np.mean([np.ptp(v[:, COL["ankle_angle_l"]]) for _, v in amputee])
    assert prosthetic < 0.7 * sound
    walker = _walk("stroke", 0.8, device="walker", side="left")
    free = _walk("stroke", 0.8, device="none", side="left")
    trunk = lambda group: np.mean([v[:, COL["lumbar_extension"]].mean() for _, v in group])  # noqa: E731
    arm = lambda group: np.mean([v[:, COL["arm_flex_r"]].mean() for _, v in group])  # noqa: E731
    assert trunk(walker) < trunk(free) - 6 and arm(walker) > arm(free) + 20


def test_realism_normal_walking_close_to_reference(reference_motion_dir):
    from biomechgpt.simulation.report import _reference, _simulated, _tiled, mean_cycle

    sim, _, n = mean_cycle(_simulated("walking", 0, 8))
    ref, _, _ = mean_cycle([_tiled(_reference(reference_motion_dir, "normal.mot")[0])])
    independent, _, _ = mean_cycle([_reference(reference_motion_dir, "subject01_walk1_ik.mot")[0]],
                                   allow_partial=True)
    assert n > 50
    for name in ("hip_flexion_r", "knee_angle_r"):
        i = COL[name]
        # Calibrated against normal.mot: mean cycles within 3 degrees RMS.
        assert np.sqrt(np.mean((sim[:, i] - ref[:, i]) ** 2)) < 3.0
        # An independent subject: same shape, offsets within between-person variation.
        assert np.corrcoef(sim[:, i], independent[:, i])[0, 1] > 0.95
        assert np.sqrt(np.mean((sim[:, i] - independent[:, i]) ** 2)) < 10.0


def test_realism_report_writes_numbers_and_plots(reference_motion_dir, tmp_path, capsys):
    argv = ["simulate", "--report", str(tmp_path / "report"), "--reference", str(reference_motion_dir),
            "--participants", "3"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "knee_angle_r" in printed and "treadmill_walking cadence" in printed
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert {"walking", "crouch", "running", "walking_subject01", "treadmill_walking"} <= set(report["comparisons"])
    knee = report["comparisons"]["running"]["knee_angle_r"]
    assert knee["rms_difference_deg"] < 8 and knee["rom_simulated_deg"] > 60
    # the real treadmill files: their conventions show as offsets (pelvis list, lumbar, elbows), their cadence is
    # the knee period's (109-116 steps/min)
    treadmill = report["comparisons"]["treadmill_walking"]
    assert treadmill["pelvis_list"]["mean_reference_deg"] > 15
    assert treadmill["elbow_flex_r"]["mean_reference_deg"] > 100
    real = report["cadence"]["treadmill_walking"]["reference"]
    assert real["n"] == 12 and 105 < real["p10"] <= real["median"] <= real["p90"] < 120
    assert report["cadence"]["treadmill_walking"]["simulated"]["n"] == 3
    for name in ("report.json", "walking.png", "crouch.png", "running.png", "treadmill_walking.png"):
        assert (tmp_path / "report" / name).stat().st_size > 1000


@pytest.mark.parametrize("argv_tail, message", [
    (["--participants", "-2"], "must be at least 1"),
    (["--participants", "x"], "expected a whole number"),
    (["--seed", "-1"], "must be 0 or more"),
    (["--held-out", "0"], "must be at least 1"),
])
def test_bad_cli_arguments_exit_2_with_one_line(tmp_path, capsys, argv_tail, message):
    with pytest.raises(SystemExit) as info:
        cli.main(["simulate", "--out", str(tmp_path / "c"), *argv_tail])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_existing_unwritable_or_missing_out_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    (tmp_path / "file").write_text("")
    for out, message in ((tmp_path / "busy", "not empty"), (tmp_path / "file" / "cohort", "cannot write")):
        assert cli.main(["simulate", "--participants", "2", "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    # --overwrite replaces cohorts only, never an unrelated folder.
    assert cli.main(["simulate", "--participants", "2", "--out", str(tmp_path / "busy"), "--overwrite"]) == 2
    assert "not a cohort folder" in capsys.readouterr().err
    assert (tmp_path / "busy" / "notes.txt").exists()
    assert cli.main(["simulate", "--participants", "1"]) == 2
    assert "--out is required" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs", [{"n_participants": 0}, {"n_participants": 2.5}, {"seed": -1}, {"workers": 0},
                                    {"participants_per_shard": 0}, {"held_out": 0}, {"held_out": 1.5},
                                    {"held_out": 1}])
def test_simulate_cohort_rejects_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        simulate_cohort(tmp_path / "c", **{"n_participants": 2, **kwargs})


def test_calibration_matches_a_fresh_fit(reference_motion_dir):
    from biomechgpt.simulation.calibration import _CALIBRATION_FILE, fit_cycle_templates

    stored = json.loads(_CALIBRATION_FILE.read_text())["templates"]
    fresh = fit_cycle_templates(reference_motion_dir)["templates"]
    assert stored.keys() == fresh.keys()
    for template in stored:
        for name, coefficients in stored[template].items():
            np.testing.assert_allclose(coefficients, fresh[template][name], atol=1e-3)
