"""The corpus builder on a tiny fake cohort folder (contract format) with a fake MotionTokenizer."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biomechgpt.dataset_builder import TASKS, build_dataset, parse_answer, summary_fields
from biomechgpt.dataset_builder import cohort_input
from biomechgpt.labels import AFFECTED_SIDES, ASSISTIVE_DEVICES, DIAGNOSES
from biomechgpt.processing.motion import CANONICAL_COORDINATES, CANONICAL_FRAME_RATE, Motion, MotionInputError

N_COORDS = len(CANONICAL_COORDINATES)


class FakeMotionTokenizer:
    """The MotionTokenizer interface: codes from 4-frame means of the first coordinate, 16 codes."""

    codebook_size = 16
    downsample_factor = 4

    def __init__(self):
        self.calls = 0
        self.seen: list[int] = []

    def __call__(self, motions):
        import torch

        motions = motions if isinstance(motions, list) else [motions]
        self.calls += 1
        self.seen += [m.n_frames for m in motions]
        lengths = [math.ceil(m.n_frames / 4) for m in motions]
        codes = torch.zeros(len(motions), max(lengths), dtype=torch.long)
        mask = torch.zeros(len(motions), max(lengths), dtype=torch.bool)
        for i, m in enumerate(motions):
            x = m.values[:, 0]
            pad = np.pad(x, (0, lengths[i] * 4 - len(x)), mode="edge").reshape(-1, 4).mean(axis=1)
            codes[i, : lengths[i]] = torch.as_tensor(np.clip((pad + 1) * 8, 0, 15).astype(np.int64))
            mask[i, : lengths[i]] = True
        return {"motion_codes": codes, "motion_codes_mask": mask}


def write_fake_cohort(folder: Path, n_participants: int = 12, seed: int = 0) -> Path:
    """A cohort folder in the contract layout: participants.parquet, trials.parquet, motions/shard-00000.npz."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "motions").mkdir(exist_ok=True)
    splits = ["train"] * (n_participants - 4) + ["validation"] * 2 + ["test"] * 2
    people, trials, chunks = [], [], []
    offset = 0
    for p in range(n_participants):
        pid = f"P{p:04d}"
        diagnosis = DIAGNOSES[p % len(DIAGNOSES)]
        impaired = diagnosis != "healthy" and p % 3 != 0
        people.append({
            "participant_id": pid, "split": splits[p], "age": 30.0 + p, "sex": "female" if p % 2 else "male",
            "height_m": 1.7, "mass_kg": 70.0, "leg_length_m": 0.9, "diagnosis": diagnosis, "severity": 0.1 * (p % 10),
            "impaired": impaired, "affected_side": AFFECTED_SIDES[(p % 3) + 1] if impaired else "none",
            "assistive_device": ASSISTIVE_DEVICES[p % len(ASSISTIVE_DEVICES)], "fall_history": p % 4 == 1,
            "fall_probability": 0.3, "tug_time_s": 9.0 + p, "fsst_time_s": 8.0 + p, "ten_m_walk_speed_m_s": 1.2,
        })
        plan = [("walking", "self_selected"), ("walking", "fast"), ("timed_up_and_go", None),
                ("four_square_step_test", None), ("squat", None)]
        if p % 2:
            plan.append(("running", None))
        for t, (activity, speed) in enumerate(plan):
            n_frames = int(rng.integers(30, 150))
            gait = activity in ("walking", "running") and not (p == 0 and t == 1)  # one gait trial without truth
            trials.append({
                "trial_id": f"{pid}-T{t:02d}", "participant_id": pid, "split": splits[p], "activity": activity,
                "speed_condition": speed, "treadmill": False, "n_frames": n_frames,
                "duration_s": n_frames / CANONICAL_FRAME_RATE, "has_arms": True, "has_lumbar": True,
                "cadence_steps_per_min": float(rng.uniform(80, 170)) if gait else math.nan,
                "walking_speed_m_s": float(rng.uniform(0.4, 3.0)) if gait else math.nan,
                "stride_length_m": float(rng.uniform(0.6, 2.2)) if gait else math.nan,
                "test_time_s": float(rng.uniform(6, 30)) if activity in ("timed_up_and_go",
                                                                          "four_square_step_test") else math.nan,
                "shard": 0, "offset": offset,
            })
            chunks.append(rng.normal(0, 0.3, size=(n_frames, N_COORDS)).astype(np.float32))
            offset += n_frames
    pd.DataFrame(people).to_parquet(folder / "participants.parquet")
    pd.DataFrame(trials).to_parquet(folder / "trials.parquet")
    # the members `biomechgpt simulate` writes: concatenated values, per-trial coordinate masks, offsets, lengths
    np.savez(folder / "motions" / "shard-00000.npz", values=np.concatenate(chunks),
             masks=np.ones((len(trials), N_COORDS), dtype=bool), offsets=np.array([t["offset"] for t in trials]),
             n_frames=np.array([t["n_frames"] for t in trials]), trial_ids=np.array([t["trial_id"] for t in trials]))
    return folder


def _read_fake_motions(folder, trial_ids=None):
    trials = pd.read_parquet(Path(folder) / "trials.parquet").set_index("trial_id")
    values = np.load(Path(folder) / "motions" / "shard-00000.npz")["values"]
    for trial_id in trial_ids if trial_ids is not None else trials.index:
        row = trials.loc[trial_id]
        block = values[int(row.offset): int(row.offset) + int(row.n_frames)]
        yield trial_id, Motion(list(CANONICAL_COORDINATES), block, CANONICAL_FRAME_RATE)


@pytest.fixture
def fake_motions(monkeypatch):
    # the fake shards are in the simulator's format, so `biomechgpt.load_cohort` reads them; only a checkout without
    # the cohort stage falls back to the reader above
    try:
        import biomechgpt.cohort  # noqa: F401
    except ModuleNotFoundError:
        monkeypatch.setattr(cohort_input, "iter_cohort_motions", _read_fake_motions)


@pytest.fixture(scope="module")
def fake_cohort(tmp_path_factory) -> Path:
    return write_fake_cohort(tmp_path_factory.mktemp("cohort") / "cohort")


@pytest.fixture
def corpus_dir(tmp_path, fake_cohort, fake_motions) -> Path:
    return build_dataset(fake_cohort, None, tmp_path / "qa", seed=0, tokenizer=FakeMotionTokenizer())


def _rows(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((folder / "data").glob("*.parquet"))], ignore_index=True)


def test_layout_columns_and_load_dataset(corpus_dir):
    import datasets

    files = sorted(p.relative_to(corpus_dir).as_posix() for p in corpus_dir.rglob("*") if p.is_file())
    assert files == ["README.md", "answer_space.json", "data/test-00000-of-00001.parquet",
                     "data/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet"]
    loaded = datasets.load_dataset(str(corpus_dir))
    assert set(loaded) == {"train", "validation", "test"}
    required = ["id", "participant_id", "trial_id", "split", "task", "question", "answer", "target_label",
                "target_value", "target_unit", "motion_codes"]
    assert loaded["train"].column_names[: len(required)] == required
    assert str(loaded["train"].features["motion_codes"].feature.dtype) == "int32"
    rows = _rows(corpus_dir)
    assert sum(len(loaded[s]) for s in loaded) == len(rows)
    assert rows.id.is_unique


def test_splits_are_participant_disjoint_and_inherited(corpus_dir, fake_cohort):
    rows = _rows(corpus_dir)
    assert rows.groupby("participant_id").split.nunique().max() == 1
    people = pd.read_parquet(fake_cohort / "participants.parquet").set_index("participant_id")
    assert (rows.split.to_numpy() == people.loc[rows.participant_id, "split"].to_numpy()).all()
    for split in ("train", "validation", "test"):
        shard = pd.read_parquet(corpus_dir / "data" / f"{split}-00000-of-00001.parquet")
        assert set(shard.split) == {split}


def test_targets_match_the_cohort_and_answers_parse_back(corpus_dir, fake_cohort):
    rows = _rows(corpus_dir)
    people = pd.read_parquet(fake_cohort / "participants.parquet").set_index("participant_id")
    trials = pd.read_parquet(fake_cohort / "trials.parquet").set_index("trial_id")
    for row in rows.itertuples():
        parsed = parse_answer(row.task, row.answer)
        person, trial = people.loc[row.participant_id], trials.loc[row.trial_id]
        kind = TASKS[row.task].kind
        if kind == "numeric":
            assert (parsed.value, parsed.unit) == (row.target_value, row.target_unit)
            truth = trial[TASKS[row.task].column]
            assert parsed.value_in(TASKS[row.task].unit) == pytest.approx(truth, abs=0.051 if row.target_unit in
                                                                          ("km/h", "s") else 0.006 if row.target_unit
                                                                          in ("m/s", "m") else 0.51)
            assert pd.isna(row.target_label)
        else:
            assert parsed.label == row.target_label
            assert pd.isna(row.target_value) and pd.isna(row.target_unit)
        if row.task == "activity":
            assert row.target_label == trial.activity == row.activity
        if row.task == "diagnosis":
            assert row.target_label == person.diagnosis
        if row.task == "impairment":
            assert row.target_label == ("impaired" if person.impaired else "unimpaired")
        if row.task == "fall_history":
            assert row.target_label == ("faller" if person.fall_history else "non_faller")
        if row.task == "summary":
            fields = summary_fields(row.target_label)
            assert fields["activity"] == trial.activity and fields["assistive_device"] == person.assistive_device


def test_tasks_only_where_defined(corpus_dir, fake_cohort):
    rows = _rows(corpus_dir)
    assert set(rows[rows.task == "tug_time"].activity) == {"timed_up_and_go"}
    assert set(rows[rows.task == "fsst_time"].activity) == {"four_square_step_test"}
    assert set(rows[rows.task == "cadence"].activity) <= {"walking", "running"}
    assert "P0000-T01" not in set(rows[rows.task == "cadence"].trial_id)  # gait trial with no ground truth
    # default: every applicable task once per trial, so each classification task covers every trial
    n_trials = len(pd.read_parquet(fake_cohort / "trials.parquet"))
    for task in ("activity", "impairment", "diagnosis", "assistive_device", "fall_history", "summary"):
        assert (rows.task == task).sum() == n_trials
    assert set(rows.task) == set(TASKS)


def test_each_trial_is_tokenized_once_and_codes_repeat_per_row(tmp_path, fake_cohort, fake_motions):
    tokenizer = FakeMotionTokenizer()
    out = build_dataset(fake_cohort, None, tmp_path / "qa", tokenizer=tokenizer)
    trials = pd.read_parquet(fake_cohort / "trials.parquet")
    assert len(tokenizer.seen) == len(trials) and tokenizer.calls == 1  # one batched call for the tiny cohort
    rows = _rows(out)
    per_trial = rows.groupby("trial_id").motion_codes.apply(lambda c: {tuple(x) for x in c})
    assert (per_trial.map(len) == 1).all()
    lengths = rows.drop_duplicates("trial_id").set_index("trial_id").motion_codes.map(len)
    expected = trials.set_index("trial_id").n_frames.map(lambda n: math.ceil(n / 4))
    assert (lengths == expected.loc[lengths.index]).all()
    # rows of one trial are consecutive
    assert rows.trial_id.ne(rows.trial_id.shift()).sum() == len(trials)


def test_same_seed_same_bytes_other_seed_other_phrasing(tmp_path, fake_cohort, fake_motions):
    def digest(folder):
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    a = build_dataset(fake_cohort, None, tmp_path / "a", seed=3, tokenizer=FakeMotionTokenizer())
    b = build_dataset(fake_cohort, None, tmp_path / "b", seed=3, tokenizer=FakeMotionTokenizer())
    c = build_dataset(fake_cohort, None, tmp_path / "c", seed=4, tokenizer=FakeMotionTokenizer())
    assert digest(a) == digest(b)
    ra, rc = _rows(a), _rows(c)
    key = ["trial_id", "task", "target_label", "target_unit"]
    targets_a = ra[key].fillna("").sort_values(key).reset_index(drop=True)
    targets_c = rc[key].fillna("").sort_values(key).reset_index(drop=True)
    assert targets_a.drop(columns="target_unit").equals(targets_c.drop(columns="target_unit"))  # same targets
    assert (ra.question != rc.question).mean() > 0.5


def test_questions_per_trial(tmp_path, fake_cohort, fake_motions):
    out = build_dataset(fake_cohort, None, tmp_path / "qa", questions_per_trial=3, tokenizer=FakeMotionTokenizer())
    rows = _rows(out)
    assert (rows.groupby("trial_id").size() == 3).all()
    tug = rows[rows.activity == "timed_up_and_go"]
    assert set(tug.groupby("trial_id").task.apply(lambda t: "tug_time" in set(t))) == {True}  # measurement first
    many = build_dataset(fake_cohort, None, tmp_path / "qa20", questions_per_trial=20,
                         tokenizer=FakeMotionTokenizer())
    assert (_rows(many).groupby("trial_id").size() == 20).all()
    with pytest.raises(ValueError, match="questions_per_trial"):
        build_dataset(fake_cohort, None, tmp_path / "qa0", questions_per_trial=0, tokenizer=FakeMotionTokenizer())


def test_card_has_configs_counts_and_license(corpus_dir):
    text = (corpus_dir / "README.md").read_text()
    assert text.startswith("---\n")
    header = text.split("---\n")[1]
    assert "license: cc-by-4.0" in header
    assert "configs:" in header and "path: data/train-*.parquet" in header
    assert "dataset_info:" in header and "name: motion_codes" in header
    rows = _rows(corpus_dir)
    n_cadence = int((rows.task == "cadence").sum())
    assert "| `cadence` | numeric | steps/min | 8 |" in text and f" {n_cadence} |" in text
    assert "How the cohort was simulated" in text and "participant-disjoint" in text
    assert str(corpus_dir) not in text  # no absolute paths, so the card is the same wherever it is built


# --- bad input ------------------------------------------------------------------------------------------------------


def test_missing_cohort_folder(tmp_path):
    with pytest.raises(MotionInputError, match="cohort folder .*: not found"):
        build_dataset(tmp_path / "nope", None, tmp_path / "qa", tokenizer=FakeMotionTokenizer())


def test_cohort_without_tables(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MotionInputError, match="no participants.parquet"):
        build_dataset(tmp_path / "empty", None, tmp_path / "qa", tokenizer=FakeMotionTokenizer())


@pytest.mark.parametrize(
    ("table", "change", "message"),
    [
        ("trials", lambda t: t.drop(columns=["activity"]), "missing column.*activity"),
        ("trials", lambda t: t.assign(activity="flying"), "unknown value.*flying"),
        ("participants", lambda t: t.assign(diagnosis="flu"), "diagnosis has unknown value"),
        ("participants", lambda t: t.assign(split="train"), "another split than its participant"),
        ("trials", lambda t: t.assign(participant_id="P9999"), "unknown participant"),
        ("trials", lambda t: pd.concat([t, t.iloc[:1]]), "trial_id must be unique"),
    ],
)
def test_invalid_cohort_tables(tmp_path, fake_cohort, table, change, message):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(fake_cohort, bad)
    path = bad / f"{table}.parquet"
    change(pd.read_parquet(path)).to_parquet(path)
    with pytest.raises(MotionInputError, match=message) as info:
        build_dataset(bad, None, tmp_path / "qa", tokenizer=FakeMotionTokenizer())
    assert "\n" not in str(info.value)


def test_tokenizer_folder_errors(tmp_path, fake_cohort):
    with pytest.raises(MotionInputError, match="tokenizer folder .*: not found"):
        build_dataset(fake_cohort, tmp_path / "tok", tmp_path / "qa")
    (tmp_path / "tok").mkdir()
    with pytest.raises(MotionInputError, match="no config.json"):
        build_dataset(fake_cohort, tmp_path / "tok", tmp_path / "qa")
    (tmp_path / "tok" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(MotionInputError, match="not a MotionTokenizer"):
        build_dataset(fake_cohort, tmp_path / "tok", tmp_path / "qa")


def test_existing_output_folder_needs_overwrite(tmp_path, fake_cohort, fake_motions):
    out = tmp_path / "qa"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(MotionInputError, match="exists and is not empty.*--overwrite"):
        build_dataset(fake_cohort, None, out, tokenizer=FakeMotionTokenizer())
    assert (out / "notes.txt").exists()
    build_dataset(fake_cohort, None, out, overwrite=True, tokenizer=FakeMotionTokenizer())
    assert not (out / "notes.txt").exists() and (out / "README.md").is_file()
    with pytest.raises(MotionInputError, match="would overwrite the input folder"):
        build_dataset(fake_cohort, None, fake_cohort, overwrite=True, tokenizer=FakeMotionTokenizer())
    assert not list(tmp_path.glob(".qa-build-*"))  # the staging folder is cleaned up


def test_command_line_errors_are_one_line(tmp_path, fake_cohort, capsys):
    from biomechgpt.cli import main

    status = main(["build-dataset", "--cohort", str(tmp_path / "nope"), "--tokenizer", str(tmp_path / "tok"),
                   "--out", str(tmp_path / "qa")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "biomechgpt build-dataset: error: cohort folder" in err
    status = main(["build-dataset", "--cohort", str(fake_cohort), "--tokenizer", str(tmp_path / "tok"),
                   "--out", str(tmp_path / "qa"), "--questions-per-trial", "0"])
    assert status == 2 and "--questions-per-trial must be at least 1" in capsys.readouterr().err
