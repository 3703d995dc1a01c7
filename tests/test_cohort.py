"""`load_cohort`: the folder contract, round trip of the motions, random access and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biomechgpt import MotionInputError
from biomechgpt.cohort import PARTICIPANT_COLUMNS, TRIAL_COLUMNS, Cohort, load_cohort
from biomechgpt.processing.motion import CANONICAL_COORDINATES, CANONICAL_FRAME_RATE
from biomechgpt.simulation import simulate_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Cohort:
    return load_cohort(simulate_cohort(tmp_path_factory.mktemp("cohort") / "c", n_participants=6, seed=2, workers=1))


def test_folder_layout_and_columns(cohort):
    folder = cohort.directory
    assert (folder / "participants.parquet").is_file() and (folder / "trials.parquet").is_file()
    assert sorted(p.name for p in (folder / "motions").iterdir()) == ["shard-00000.npz"]
    assert list(cohort.participants.columns[:len(PARTICIPANT_COLUMNS)]) == list(PARTICIPANT_COLUMNS)
    assert set(TRIAL_COLUMNS) <= set(cohort.trials.columns)
    meta = json.loads((folder / "cohort.json").read_text())
    assert meta["n_trials"] == len(cohort) and meta["coordinates"] == list(CANONICAL_COORDINATES)
    assert "hours=" in repr(cohort)


def test_motion_round_trip_matches_the_shard(cohort):
    with np.load(cohort.directory / "motions" / "shard-00000.npz") as shard:
        values, masks, offsets = shard["values"], shard["masks"], shard["offsets"]
    assert values.dtype == np.float32 and values.shape[1] == len(CANONICAL_COORDINATES)
    for k in (0, len(cohort) // 2, len(cohort) - 1):
        row = cohort.trials.iloc[k]
        motion = cohort.motion(row["trial_id"])
        assert motion.is_canonical and motion.frame_rate == CANONICAL_FRAME_RATE
        assert motion.n_frames == row["n_frames"] and motion.duration == pytest.approx(row["duration_s"])
        np.testing.assert_array_equal(motion.values, values[row["offset"]:row["offset"] + row["n_frames"]])
        np.testing.assert_array_equal(motion.mask, masks[list(offsets).index(row["offset"])])
        assert motion.meta["participant_id"] == row["participant_id"]
        assert motion.meta["activity"] == row["activity"]


def test_motions_are_canonical_units(cohort):
    for _, motion in cohort.iter_motions(cohort.trials["trial_id"][:20]):
        knee = motion.column("knee_angle_r")
        assert knee.max() < np.radians(140) and np.percentile(knee, 90) > 0  # radians, flexion positive
        assert motion.column("pelvis_ty").max() < 2.0  # meters
        assert np.isfinite(motion.values).all()


def test_iter_motions_and_split_trials(cohort):
    ids = list(cohort.trials["trial_id"][::-1][:5])
    assert [tid for tid, _ in cohort.iter_motions(ids)] == ids
    assert sum(1 for _ in cohort.iter_motions()) == len(cohort)
    parts = [cohort.split_trials(s) for s in ("train", "validation", "test")]
    assert sum(len(p) for p in parts) == len(cohort)
    assert (parts[0]["split"] == "train").all()
    assert len(cohort.split_participants("test")) == 1
    with pytest.raises(ValueError, match="unknown split"):
        cohort.split_trials("dev")


def test_values_are_memory_mapped_and_read_only(cohort):
    first = cohort.trials["trial_id"][0]
    cohort.motion(first)
    assert isinstance(cohort._values[0], np.memmap)
    motion = cohort.motion(first)
    motion.values[:] = 0  # a copy: the cohort on disk is untouched
    assert np.abs(cohort.motion(first).values).sum() > 0


def test_errors_name_the_problem(cohort, tmp_path):
    with pytest.raises(KeyError, match="not in cohort"):
        cohort.motion("P9999_T00")
    with pytest.raises(MotionInputError, match="cohort folder not found"):
        load_cohort(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MotionInputError, match="participants.parquet missing"):
        load_cohort(tmp_path / "empty")
