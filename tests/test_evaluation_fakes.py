"""Small synthetic stand-ins for the evaluation tests: canonical gait-like motions with known cadence, speed and
activity, a cohort folder-like lookup, QA rows in the corpus's columns, and a fake answering model. The tests in
this file check the fakes themselves keep what they promise."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from biomechgpt.processing.motion import CANONICAL_COORDINATES, CANONICAL_FRAME_RATE, Motion

IDX = {c: i for i, c in enumerate(CANONICAL_COORDINATES)}


def synthetic_motion(activity: str, cadence: float, speed: float, duration: float, seed: int,
                     crouch: float = 0.0) -> Motion:
    """Walking / running / standing_balance with a known cadence (steps/min) and speed (m/s)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration * CANONICAL_FRAME_RATE))
    t = np.arange(n) / CANONICAL_FRAME_RATE
    v = np.zeros((n, len(CANONICAL_COORDINATES)))
    phase = 2 * math.pi * (cadence / 120.0) * t + rng.uniform(0, 2 * math.pi)
    heading = rng.uniform(0, 2 * math.pi)
    if activity == "standing_balance":
        gain, speed = 0.02, 0.0
    else:
        gain = 1.6 if activity == "running" else 1.0
    for side, shift in (("r", 0.0), ("l", math.pi)):
        v[:, IDX[f"hip_flexion_{side}"]] = gain * 0.35 * np.sin(phase + shift) + 0.1 + 0.4 * crouch
        v[:, IDX[f"knee_angle_{side}"]] = gain * 0.55 * (1 - np.cos(phase + shift)) / 2 + 0.08 + 0.5 * crouch
        v[:, IDX[f"ankle_angle_{side}"]] = gain * 0.2 * np.sin(phase + shift + 1.0) + 0.2 * crouch
        v[:, IDX[f"arm_flex_{side}"]] = gain * 0.3 * np.sin(phase + shift + math.pi)
    v[:, IDX["pelvis_ty"]] = 0.93 - 0.1 * crouch + gain * 0.02 * np.cos(2 * phase)
    v[:, IDX["pelvis_tx"]] = speed * t * math.cos(heading) + rng.uniform(-2, 2)
    v[:, IDX["pelvis_tz"]] = speed * t * math.sin(heading) + rng.uniform(-2, 2)
    v += rng.normal(0, 0.01, v.shape)
    return Motion(list(CANONICAL_COORDINATES), v, CANONICAL_FRAME_RATE)


def fake_trials(n_per_split: dict[str, int] | None = None, seed: int = 0) -> tuple[pd.DataFrame, dict[str, Motion]]:
    """Trials with activity, cadence and speed targets, and their motions by trial id."""
    n_per_split = n_per_split or {"train": 60, "validation": 16, "test": 24}
    rng = np.random.default_rng(seed)
    rows, motions = [], {}
    for split, count in n_per_split.items():
        for k in range(count):
            activity = ("walking", "running", "standing_balance")[k % 3]
            cadence = {"walking": rng.uniform(90, 125), "running": rng.uniform(150, 180)}.get(activity, 0.0)
            speed = {"walking": rng.uniform(0.6, 1.6), "running": rng.uniform(2.2, 3.5)}.get(activity, 0.0)
            trial_id = f"{split}-{k:03d}"
            motions[trial_id] = synthetic_motion(activity, max(cadence, 60.0), speed, rng.uniform(4, 9),
                                                 seed=int(rng.integers(1 << 30)))
            rows.append({"trial_id": trial_id, "participant_id": f"p-{split}-{k // 2}", "split": split,
                         "activity": activity, "cadence_steps_per_min": cadence or math.nan,
                         "walking_speed_m_s": speed if activity == "walking" else math.nan})
    return pd.DataFrame(rows), motions


def fake_corpus(trials: pd.DataFrame) -> pd.DataFrame:
    """QA rows in the corpus's columns: an activity question per trial, cadence and speed per walking trial."""
    rows = []
    for trial in trials.itertuples():
        base = {"participant_id": trial.participant_id, "trial_id": trial.trial_id, "split": trial.split,
                "motion_codes": [ord(ch) % 64 for ch in trial.trial_id]}
        rows.append({**base, "task": "activity", "question": "What activity is this?",
                     "answer": f"This is {trial.activity.replace('_', ' ')}.", "target_label": trial.activity,
                     "target_value": None, "target_unit": None})
        if trial.activity == "walking":
            rows.append({**base, "task": "cadence", "question": "What is the cadence?",
                         "answer": f"About {trial.cadence_steps_per_min:.0f} steps per minute.", "target_label": None,
                         "target_value": float(trial.cadence_steps_per_min), "target_unit": "steps/min"})
            rows.append({**base, "task": "walking_speed", "question": "How fast is the walking?",
                         "answer": f"About {trial.walking_speed_m_s:.2f} m/s.", "target_label": None,
                         "target_value": float(trial.walking_speed_m_s), "target_unit": "m/s"})
    frame = pd.DataFrame(rows)
    frame.insert(0, "id", [f"q{i:05d}" for i in range(len(frame))])
    return frame


def write_corpus(frame: pd.DataFrame, folder) -> None:
    """The corpus folder layout: data/{split}-00000-of-00001.parquet."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split, rows in frame.groupby("split"):
        rows.to_parquet(folder / "data" / f"{split}-00000-of-00001.parquet", index=False)


_LABELS = ("standing balance", "walking", "running")


def fake_parse(task: str, text: str):
    """A stand-in for the corpus parser: a known activity phrase, or the first number."""
    if task == "activity":
        found = [label for label in _LABELS if label in text]
        return {"label": found[0].replace(" ", "_") if found else None, "value": None, "unit": None}
    numbers = [w.strip(".,") for w in text.split() if w.strip(".,").replace(".", "", 1).isdigit()]
    return {"label": None, "value": float(numbers[0]) if numbers else None, "unit": None}


class FakeModel:
    """Answers from a lookup of the corpus's own answers, with known mistakes: every `wrong_every`-th activity
    question (in the order asked) gets a wrong label, every `unparsed_every`-th an answer naming nothing, and numbers
    are off by `offset`."""

    def __init__(self, corpus: pd.DataFrame, wrong_every: int = 5, unparsed_every: int = 7, offset: float = 3.0):
        self.lookup = {(tuple(int(c) for c in r.motion_codes), r.question): (r.task, r.answer, r.target_label,
                                                                             r.target_value)
                       for r in corpus.itertuples()}
        self.wrong_every, self.unparsed_every, self.offset = wrong_every, unparsed_every, offset
        self.asked = 0

    def answer_batch(self, motions, questions, *, batch_size=64, **kwargs):
        answers = []
        for codes, question in zip(motions, questions):
            key = (tuple(int(c) for c in codes), question) if isinstance(codes, list) else None
            task, text, label, value = self.lookup.get(key, ("activity", "This is walking.", "walking", None))
            confidence = None
            if task == "activity":
                self.asked += 1
                confidence = 0.9
                if self.asked % self.unparsed_every == 0:
                    text, confidence = "I cannot tell.", 0.3
                elif self.asked % self.wrong_every == 0:
                    text = "This is running." if label != "running" else "This is walking."
            elif value is not None:
                text = f"About {value + self.offset:.2f} units."
            answers.append({"question": question, "task": task, "answer": text, "confidence": confidence})
        return answers


def test_synthetic_motion_is_canonical_and_moves_at_its_speed():
    motion = synthetic_motion("walking", 110.0, 1.2, 5.0, seed=1)
    assert motion.is_canonical and motion.n_frames == 150
    x, z = motion.column("pelvis_tx"), motion.column("pelvis_tz")
    travelled = math.hypot(x[-1] - x[0], z[-1] - z[0])
    assert abs(travelled / motion.duration - 1.2) < 0.05


def test_fake_corpus_columns_and_splits():
    trials, motions = fake_trials({"train": 6, "test": 3})
    corpus = fake_corpus(trials)
    assert set(corpus.columns) >= {"id", "task", "question", "answer", "target_label", "target_value", "trial_id"}
    assert set(corpus.trial_id) == set(motions)
    assert set(corpus.split) == {"train", "test"}
