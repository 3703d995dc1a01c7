"""`biomechgpt evaluate`: score BiomechGPT and the non-LLM baseline on every task of the QA corpus's test split.

For every test question the model answers about the row's motion codes (questions about one trial share its motion
prefix), the answer is parsed back to a label or number with the corpus's own parser, and scored with the task's
metric from `biomechgpt.metrics`. The baseline is trained on the same training rows (same task, trial and target)
and answers the same test rows, so the two columns of every table are like for like.

Outputs in `out_dir`: `metrics.json` (`{"tasks": {task: {"n", "biomechgpt", "baseline", ...}}, "experiments": ...}`),
`predictions.parquet` (one row per test question with both systems' answers), `report.md` with PNG figures under
`figures/`, and `model_card.md`. Reading the corpus, asking the model and reading its answers back are shared with
the experiments in `biomechgpt.evaluation.common`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from biomechgpt.errors import UsageError
from biomechgpt.evaluation.common import (
    answer_field,
    answer_rows,
    convert_value,
    corpus_parser,
    load_corpus,
    load_model,
    parse_prediction,
    predictions_frame,
    reads_motion,
    task_units,
)
from biomechgpt.metrics import HEADLINE_METRIC, METRICS_BY_TASK, compute_task_metrics

if TYPE_CHECKING:
    from biomechgpt.processing.motion import Motion

__all__ = [
    "evaluate_model",
    "load_corpus",
    "answer_rows",
    "parse_prediction",
    "fall_history_ceiling",
    "reference_expectations",
    "knee_period_cadence",
    "heldout_questions",
    "default_reference_dir",
    "DEFAULT_REFERENCE_DIR",
    "REFERENCE_MOTION_ENV",
]

# The real recordings of ../shared/reference_motion/ beside a repository checkout. An installed package has no such
# folder: `default_reference_dir` uses this only when the package runs from a checkout.
DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference_motion"
REFERENCE_MOTION_ENV = "BIOMECHGPT_REFERENCE_MOTION"
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout's root when not installed


def default_reference_dir() -> Path | None:
    """Where the sim-to-real check finds the real recordings when not told: `$BIOMECHGPT_REFERENCE_MOTION`, else
    `../shared/reference_motion/` beside the repository checkout this package runs from, else `None` (an installed
    package, which has no such folder beside it)."""
    if os.environ.get(REFERENCE_MOTION_ENV):
        return Path(os.environ[REFERENCE_MOTION_ENV])
    if (_PACKAGE_ROOT / "pyproject.toml").is_file():
        return _PACKAGE_ROOT.parent / "shared" / "reference_motion"
    return None


# ----------------------------------------------------------------------------------------------------------------
# Per participant


def participant_level_scores(predictions: pd.DataFrame, tasks: Sequence[str]) -> dict[str, dict]:
    """Macro-F1 per participant for the participant-level classification tasks (impairment, side, diagnosis,
    device, falls), for BiomechGPT and the baseline alike: each system's label for a participant is the most frequent
    of its per-trial labels (one vote per trial; ties go to the label first in sorted order), compared with the
    participant's label. Averaging over a person's trials is what a clinic would do with several recordings."""
    from collections import Counter

    from biomechgpt.dataset_builder.tasks import TASKS
    from biomechgpt.metrics.functional import classification_metrics

    out: dict[str, dict] = {}
    for task in tasks:
        spec = TASKS.get(task)
        if spec is None or spec.kind != "classification" or spec.source != "participant":
            continue
        rows = predictions[predictions.task == task].drop_duplicates("trial_id")
        if rows.empty or rows.participant_id.isna().all():
            continue
        entry: dict[str, Any] = {"n_participants": int(rows.participant_id.nunique())}
        for column, name in (("prediction", "biomechgpt"), ("baseline_prediction", "baseline")):
            if column not in rows:
                continue
            votes, truth = [], []
            for _, group in rows.groupby("participant_id", sort=True):
                counts = Counter(str(p) for p in group[column] if p is not None and not pd.isna(p))
                votes.append(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if counts else None)
                truth.append(str(group.reference.iloc[0]))
            entry[name] = {"macro_f1": classification_metrics(votes, truth)["macro_f1"]}
        out[task] = entry
    return out


# ----------------------------------------------------------------------------------------------------------------
# The baseline on the same rows


def _examples(corpus: pd.DataFrame, split: str, task: str, units: dict[str, str]) -> tuple[list[str], list]:
    """(trial ids, targets) of one task and split, one per trial (phrasings of one question share a target)."""
    rows = corpus[(corpus.split == split) & (corpus.task == task)].drop_duplicates("trial_id")
    if METRICS_BY_TASK[task] == "classification":
        return list(rows.trial_id), [str(v) for v in rows.target_label]
    targets = [convert_value(float(v), u, units.get(task)) for v, u in zip(rows.target_value, rows.target_unit)]
    return list(rows.trial_id), targets


def _motion_source(corpus: pd.DataFrame, cohort_dir: str | Path | None, model_dir: str | Path | None):
    """A trial id -> canonical Motion lookup: the cohort's stored motion, or else the motion decoded from the
    corpus's codes by the model's MotionTokenizer. Returns (lookup, description)."""
    if cohort_dir is not None:
        from biomechgpt.cohort import load_cohort

        cohort = load_cohort(cohort_dir)
        return cohort.motion, "cohort motion"
    if model_dir is None:
        raise UsageError("the baseline needs --cohort, or a model folder whose MotionTokenizer decodes the codes")
    from biomechgpt.processing.tokenization_motion import MotionTokenizer

    tokenizer = MotionTokenizer.from_pretrained(Path(model_dir) / "motion_tokenizer")
    codes = dict(zip(corpus.trial_id, corpus.motion_codes))
    return (lambda trial_id: tokenizer.decode([int(c) for c in codes[trial_id]])), "motion decoded from its codes"


def _run_baseline(corpus, tasks, motion_for, settings, progress):
    from tqdm.auto import tqdm

    from biomechgpt.evaluation.baseline import NonLLMBaseline

    units = task_units()
    baseline_tasks = [t for t in tasks if METRICS_BY_TASK[t] in ("classification", "regression")]
    train, validation = {}, {}
    for task in baseline_tasks:
        ids, targets = _examples(corpus, "train", task, units)
        if not ids:
            continue
        train[task] = (ids, targets)
        val_ids, val_targets = _examples(corpus, "validation", task, units)
        if val_ids:
            validation[task] = (val_ids, val_targets)
    baseline = NonLLMBaseline(settings)
    with tqdm(total=1, desc="baseline", disable=not progress) as bar:
        baseline.fit(train, motion_for, validation)
        bar.update(1)
    return baseline


# ----------------------------------------------------------------------------------------------------------------
# Ceiling and real recordings


def fall_history_ceiling(participants: pd.DataFrame, participant_ids: Sequence[str]) -> dict:
    """Best achievable fall-history accuracy from the simulator's stored fall probabilities.

    Predicting the more likely class is right with probability max(p, 1 - p); the expected accuracy over the given
    participant ids (one entry per test question, so it weighs participants as the model's accuracy does) is the
    mean of that. `per_participant` averages over the distinct participants instead.
    """
    p = participants.set_index("participant_id")["fall_probability"].astype(float)
    ids = [i for i in participant_ids if i in p.index]
    if not ids:
        return {"accuracy": None, "per_participant": None, "n": 0, "note": "no test participants with a probability"}
    rows = p.loc[ids].to_numpy()
    distinct = p.loc[sorted(set(ids))].to_numpy()
    return {
        "accuracy": float(np.maximum(rows, 1 - rows).mean()),
        "per_participant": float(np.maximum(distinct, 1 - distinct).mean()),
        "n": len(ids),
        "n_participants": len(distinct),
    }


def reference_expectations(filename: str | Path) -> dict[str, str] | None:
    """What a real recording in ../shared/reference_motion/ shows, from its documented content (the folders'
    READMEs): activity and impairment labels, or None for an unknown file. Crouch gait (as in cerebral palsy) is
    impaired. `filename` may carry its folder: the files of `treadmill_walking_*/` are a healthy adult walking on a
    treadmill, except S01DE503, which also holds other movements."""
    path = Path(filename)
    name = path.name.lower()
    if path.parent.name.lower().startswith("treadmill_walking"):
        if path.suffix.lower() in (".mot", ".sto", ".csv") and name != "s01de503.mot":
            return {"activity": "walking", "impairment": "unimpaired"}
        return None
    if name.startswith("crouch"):
        return {"activity": "walking", "impairment": "impaired"}
    if name == "normal.mot" or "walk" in name:
        return {"activity": "walking", "impairment": "unimpaired"}
    if "run" in name:
        return {"activity": "running", "impairment": "unimpaired"}
    return None


# A cadence is read from a recording only when it holds at least this many seconds of gait (three strides or more).
_MIN_CADENCE_SECONDS = 3.0


def knee_period_cadence(motion: Motion) -> float | None:
    """Cadence (steps/min) of a walking or running recording from the period of its knee angles: 120 / stride time,
    the stride time being the first lag (0.5-2 s) at which both knees' normalised autocorrelation comes within 10%
    of its best, refined to a fraction of a frame. `None` when the recording is shorter than 3 s, has no knee
    angles or no clear period. A reference that does not depend on the simulator or on any trained model."""
    if motion.duration < _MIN_CADENCE_SECONDS:
        return None
    rate = float(motion.frame_rate)
    lo, hi = int(0.5 * rate), int(2.0 * rate)
    curves = []
    for column in ("knee_angle_r", "knee_angle_l"):
        present = motion.mask is None or bool(motion.mask[motion.coordinates.index(column)])
        x = np.asarray(motion.column(column), dtype=np.float64)
        if present and np.ptp(x) > np.radians(10):
            x = x - x.mean()
            n = len(x)
            if hi + 2 >= n:
                return None
            # only the lags searched: O(frames x lags), not the O(frames^2) of a full correlation
            lags = np.array([np.dot(x[:n - k], x[k:]) / (n - k) for k in range(hi + 2)])
            curves.append(lags / x.var())
    if not curves:
        return None
    ac = np.mean(curves, axis=0)
    window = ac[lo:hi + 1]
    best = float(window.max())
    if best < 0.5:
        return None
    peaks = [k for k in range(1, len(window) - 1)
             if window[k] >= window[k - 1] and window[k] >= window[k + 1] and window[k] >= 0.9 * best]
    if not peaks:
        return None
    k = peaks[0] + lo
    a, b, c = ac[k - 1], ac[k], ac[k + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) < 0 else 0.0
    return float(120.0 * rate / (k + shift))


_NO_REFERENCE_DIR = (f"no folder of real recordings: pass reference_dir (biomechgpt evaluate --reference-motion DIR) "
                     f"or set ${REFERENCE_MOTION_ENV}; ../shared/reference_motion/ is looked for only beside a "
                     f"repository checkout")
_CHECKED_TASKS = ("activity", "impairment", "cadence")
# Cadence answers within this many steps/min of the knee-angle period count as right.
CADENCE_TOLERANCE = 5.0


def _reference_check(model, baseline, corpus, reference_dir: Path | None, parser) -> dict:
    """Ask the model about the real recordings in `reference_dir` and its sub-folders (sim-to-real): activity and
    impairment against their documented content, cadence against the knee-angle period where the recording holds
    gait. `{"skipped": reason}` when it cannot run."""
    if reference_dir is None:
        return {"skipped": _NO_REFERENCE_DIR}
    if not Path(reference_dir).is_dir():
        return {"skipped": f"real recordings not found at {reference_dir}"}
    from biomechgpt.motion_io import load_motion

    test = corpus[corpus.split == "test"].sort_values("id")
    questions = {}
    for task in _CHECKED_TASKS:
        asked = test[test.task == task]
        if len(asked):
            questions[task] = str(asked.question.iloc[0])  # a wording from the corpus, so the model knows it
    if not {"activity", "impairment"} & set(questions):
        return {"skipped": "the QA corpus's test split has no activity or impairment question to ask"}
    root = Path(reference_dir)
    files = sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".mot", ".sto", ".csv")),
                   key=lambda p: (len(p.relative_to(root).parts), str(p.relative_to(root))))
    files = [p for p in files if reference_expectations(p.relative_to(root)) is not None]
    if not files:
        return {"skipped": f"no recording with a known content (normal.mot, crouch*.mot, *walk*, *run*, "
                           f"treadmill_walking_*/) in {reference_dir}"}
    unit = task_units().get("cadence")
    recordings, summary = [], {}
    for path in files:
        name = str(path.relative_to(root).as_posix())
        expected: dict[str, Any] = dict(reference_expectations(path.relative_to(root)))
        try:
            motion = load_motion(path)
        except ValueError as err:
            recordings.append({"file": name, "error": " ".join(str(err).split())})
            continue
        if expected["activity"] in ("walking", "running"):
            cadence = knee_period_cadence(motion)
            if cadence is not None:
                expected["cadence"] = cadence
        entry: dict[str, Any] = {"file": name, "duration_s": round(motion.duration, 3)}
        tasks = [t for t in expected if t in questions]
        try:
            answers = [] if model is None else model.answer_batch([motion] * len(tasks), [questions[t] for t in tasks])
        except ValueError as err:  # e.g. a model saved without its MotionTokenizer cannot read raw motion
            entry["biomechgpt_error"] = " ".join(str(err).split())
            answers = []
        for task, answer in zip(tasks, answers):
            label, value, value_unit = parse_prediction(task, answer_field(answer, "answer"), parser)
            entry[task] = {"expected": expected[task], "biomechgpt_answer": answer_field(answer, "answer")}
            if task == "cadence":
                try:
                    value = convert_value(None if value is None else float(value), value_unit or unit, unit)
                except ValueError:
                    value = None
                entry[task]["biomechgpt"] = value
                entry[task]["expected"] = round(float(expected[task]), 1)
            else:
                entry[task].update(biomechgpt=label, confidence=answer_field(answer, "confidence"))
        if baseline is not None:
            for task in tasks:
                if task in baseline.tasks:
                    labels, conf = baseline.predict(task, [motion])
                    entry.setdefault(task, {"expected": expected[task]})
                    entry[task]["baseline"] = float(labels[0]) if task == "cadence" else labels[0]
        recordings.append(entry)
    for task in _CHECKED_TASKS:
        scored = [r[task] for r in recordings if task in r]
        if not scored:
            continue
        answered = [s for s in scored if "biomechgpt_answer" in s]
        if task == "cadence":
            summary[task] = {"n": len(scored), "tolerance": CADENCE_TOLERANCE,
                             **_cadence_scores("biomechgpt", answered), **_cadence_scores("baseline", scored)}
            continue
        summary[task] = {
            "n": len(scored),
            "biomechgpt_accuracy": (float(np.mean([s.get("biomechgpt") == s["expected"] for s in answered]))
                                    if answered else None),
            "baseline_accuracy": (float(np.mean([s.get("baseline") == s["expected"] for s in scored]))
                                  if any("baseline" in s for s in scored) else None),
        }
    return {"recordings": recordings, "summary": summary, "questions": questions}


def _cadence_scores(system: str, scored: list[dict]) -> dict[str, float | None]:
    """Mean absolute error and share within `CADENCE_TOLERANCE` of the knee-angle cadence; an unparsed answer counts
    as outside the tolerance and is left out of the error."""
    if not any(system in s for s in scored):
        return {f"{system}_mae": None, f"{system}_within_tolerance": None}
    errors = [abs(s[system] - s["expected"]) if s.get(system) is not None else None for s in scored]
    numbers = [e for e in errors if e is not None]
    return {f"{system}_mae": float(np.mean(numbers)) if numbers else None,
            f"{system}_within_tolerance": float(np.mean([e is not None and e <= CADENCE_TOLERANCE for e in errors]))}


# ----------------------------------------------------------------------------------------------------------------
# Wordings the model was not trained on

HELDOUT_QUESTIONS_FILE = Path(__file__).with_name("heldout_questions.tsv")
# Numeric answers to different wordings count as the same answer when they agree within this fraction.
_SAME_NUMBER = 0.02


def heldout_questions(path: str | Path = HELDOUT_QUESTIONS_FILE) -> dict[str, list[str]]:
    """The held-out question wordings by task (`task<TAB>question` lines; `#` comments), written apart from the
    corpus's templates and the router's cues."""
    out: dict[str, list[str]] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        task, sep, question = line.partition("\t")
        if not sep or not question.strip() or task not in METRICS_BY_TASK:
            raise ValueError(f"{path}, line {number}: expected '<task><TAB><question>' with a known task, "
                             f"got {line!r}")
        out.setdefault(task, []).append(question.strip())
    return out


def _same_answers(kind: str, values: list[Any], texts: list[Any]) -> bool:
    if all(t == texts[0] for t in texts):  # the same sentence, a number or not (e.g. "it has no gait")
        return True
    if kind == "classification":
        return values[0] is not None and all(v == values[0] for v in values)
    if any(v is None for v in values):
        return False
    return max(values) - min(values) <= _SAME_NUMBER * max(abs(float(np.median(values))), 1e-9)


def _wording_check(model: Any, test: pd.DataFrame, predictions: pd.DataFrame, motion_for: Callable[[str], Any] | None,
                   parser: Callable[[str, str], Any], n_trials: int) -> dict:
    """Ask the first `n_trials` test trials of each task every held-out wording of its question, two ways: straight to
    the model (`model.answer_batch`, which reads the wording itself) and as `biomechgpt ask` and the chat page do
    (`answer_questions`: route the wording to a task, ask the task's training question). Per task and way: the share
    of trials whose answer is the same for every wording, and the score with held-out wordings beside the score of
    the corpus's own (training-template) wording on the same trials."""
    wordings = heldout_questions()
    picked = []
    for task, group in test.groupby("task", sort=False):
        if task in wordings and METRICS_BY_TASK[task] != "text":
            picked.append(group.drop_duplicates("trial_id").head(n_trials))
    if not picked or n_trials <= 0:
        return {"skipped": "no task with held-out wordings in the test split"}
    base = pd.concat(picked)
    asked = pd.DataFrame([{**row, "question": question} for _, row in base.iterrows()
                          for question in wordings[row["task"]]]).reset_index(drop=True)
    ways = {"model": predictions_frame(asked, answer_rows(model, asked, progress=False, motion_for=motion_for),
                                       parser)}
    processor = getattr(model, "processor", None)
    if processor is not None and hasattr(processor, "route_question"):
        from biomechgpt.answering import answer_questions

        replies: list[Any] = [None] * len(asked)
        for trial, rows in asked.groupby("trial_id", sort=False):
            first = rows.iloc[0]
            motion = motion_for(trial) if reads_motion(model) else [int(c) for c in first["motion_codes"]]
            for i, reply in zip(rows.index, answer_questions(model, motion, list(rows.question))):
                replies[i] = reply
        ways["ask"] = predictions_frame(asked, replies, parser)
    trained = predictions.set_index("id")
    tasks: dict[str, dict] = {}
    for task, rows in base.groupby("task", sort=False):
        kind = METRICS_BY_TASK[task]
        own = trained.loc[list(rows.id)]
        entry: dict[str, Any] = {"n_trials": len(rows), "wordings": len(wordings[task]),
                                 "training_wording": _wording_score(kind, list(own.prediction), list(own.reference))}
        for way, frame in ways.items():
            mine = frame[frame.task == task]
            by_trial = mine.groupby("id", sort=False)
            same = [_same_answers(kind, list(rows.prediction), list(rows.answer)) for _, rows in by_trial]
            entry[way] = {"unchanged": float(np.mean(same)),
                          **_wording_score(kind, list(mine.prediction), list(mine.reference))}
        tasks[task] = entry
    overall = {}
    for way in ways:
        unchanged = [e[way]["unchanged"] * e["n_trials"] for e in tasks.values()]
        closed = [e for e in tasks.values() if "accuracy" in e["training_wording"]]
        overall[way] = {
            "unchanged": float(sum(unchanged) / sum(e["n_trials"] for e in tasks.values())),
            "accuracy_change": (float(np.mean([e[way]["accuracy"] - e["training_wording"]["accuracy"]
                                               for e in closed])) if closed else None),
        }
    return {"tasks": tasks, "overall": overall, "wordings_file": HELDOUT_QUESTIONS_FILE.name}


def _wording_score(kind: str, predicted: list[Any], reference: list[Any]) -> dict[str, float | None]:
    """Accuracy (closed-set) or mean absolute error (numbers; unparsed answers left out, their share reported)."""
    if kind == "classification":
        return {"accuracy": float(np.mean([p is not None and str(p) == str(r) for p, r in zip(predicted, reference)]))}
    pairs = [(float(p), float(r)) for p, r in zip(predicted, reference) if p is not None and r is not None]
    return {"mae": float(np.mean([abs(p - r) for p, r in pairs])) if pairs else None,
            "unparsed": float(1 - len(pairs) / max(len(predicted), 1))}


# ----------------------------------------------------------------------------------------------------------------
# The whole evaluation


def _summary_field_agreement(rows: pd.DataFrame, parser: Callable[[str, str], Any], rel_tol: float = 0.1) -> dict:
    """How many of the facts a reference summary states (activity, impairment, cadence, ...) the generated summary
    states too, read with the corpus parser: labels must match, numbers be within `rel_tol` (10%)."""
    per_row, per_field = [], {}
    for reference, answer in zip(rows.reference_answer, rows.answer):
        wanted = getattr(parser("summary", str(reference)), "fields", None)
        if not wanted:
            continue
        got = getattr(parser("summary", str(answer or "")), "fields", None) or {}
        hits = []
        for name, value in wanted.items():
            said = got.get(name)
            if isinstance(value, (int, float)) and isinstance(said, (int, float)):
                hit = abs(said - value) <= rel_tol * abs(value)
            else:
                hit = said == value
            hits.append(hit)
            per_field.setdefault(name, []).append(hit)
        per_row.append(float(np.mean(hits)))
    if not per_row:
        return {"field_accuracy": None, "notes": {"field_accuracy": "the parser reads no fields from the summaries"}}
    return {"field_accuracy": float(np.mean(per_row)),
            "per_field_accuracy": {k: float(np.mean(v)) for k, v in per_field.items()}}


def _card_options(model_dir: Path) -> dict:
    """Model name and description for the card from the training summary `train` writes, when present."""
    try:
        summary = json.loads((model_dir / "training_summary.json").read_text())
    except (OSError, ValueError):
        return {}
    base = str(summary.get("base_model", "tiny"))
    options: dict[str, Any] = {"model_name": f"biomechgpt-{Path(base).name}"}
    if summary.get("parameters"):
        embedded = base.startswith("tiny")
        options["model_description"] = (
            f"{'the embedded' if embedded else base} {summary['parameters'] / 1e6:.1f}M-parameter causal language "
            f"model{', trained from scratch here' if embedded else ''} ({summary.get('mode', 'full')} fine-tuning, "
            f"{summary.get('steps', '?')} steps), whose vocabulary is extended with the motion tokens")
        if not embedded:
            options["base_model"] = base
    options["motion_input"] = summary.get("arguments", {}).get("motion_input", "codes")
    try:
        weight = json.loads((model_dir / "config.json").read_text()).get("readout_answer_weight") or 0.0
        options["readout_answer_weight"] = float(weight)
    except (OSError, ValueError, TypeError):
        pass
    return options


def _score_column(task: str, rows: pd.DataFrame, column: str) -> dict:
    conf = list(rows[f"{column}_confidence"]) if METRICS_BY_TASK[task] == "classification" else None
    return compute_task_metrics(task, list(rows[f"{column}_prediction"]), list(rows.reference), conf)


def _for_parquet(predictions: pd.DataFrame) -> pd.DataFrame:
    """Columns that hold labels for some tasks and numbers for others become a string column plus `<name>_value`
    (float), since a Parquet column has one type."""
    frame = predictions.copy()
    for column in [c for c in frame.columns if c == "reference" or c.endswith("prediction")]:
        values = list(frame[column])
        frame[f"{column}_value"] = [float(v) if isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)
                                    else math.nan for v in values]
        frame[column] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
    for column in [c for c in frame.columns if c.endswith("confidence")]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def evaluate_model(
    model_dir: str | Path | Any,
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    cohort_dir: str | Path | None = None,
    motion_source: Callable[[str], Any] | None = None,
    experiments: Sequence[str] = (),
    quick: bool = False,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    max_rows_per_task: int | None = None,
    batch_size: int = 256,
    baseline_settings: Any = None,
    reference_dir: str | Path | None = None,
    sim_to_real: bool = True,
    wording_trials: int | None = None,
    parser: Callable[[str, str], Any] | None = None,
    experiment_options: dict | None = None,
    write_card: bool = True,
    progress: bool = True,
) -> dict:
    """Scores BiomechGPT and the non-LLM baseline on every task of the test split and writes the results.

    Args:
        model_dir (`str` or `Path`): a model folder (`biomechgpt train --out`); a loaded model object with
            `answer_batch(motions, questions)` is accepted too.
        dataset_dir (`str` or `Path`): the QA corpus folder (`biomechgpt build-dataset --out`).
        out_dir (`str` or `Path`): where `metrics.json`, `predictions.parquet`, `report.md`, `figures/` and
            `model_card.md` go (created).
        cohort_dir (`str` or `Path`, *optional*): the cohort folder. Gives the baseline the stored motion (otherwise
            it uses the motion decoded from the codes) and the fall-history ceiling.
        motion_source (`Callable[[str], Motion]`, *optional*): trial id -> canonical `Motion` for the baseline, in
            place of the cohort's stored motion.
        experiments (`list[str]`, *optional*): any of "transfer" and "size" (see `biomechgpt.evaluation.experiments`).
        quick (`bool`, defaults to `False`): small baseline and experiment budgets, for smoke tests.
        seed (`int`, defaults to 0): seed of the baseline and the experiments.
        tasks (`list[str]`, *optional*): score only these tasks.
        max_rows_per_task (`int`, *optional*): score only the first rows (by id) of each task.
        batch_size (`int`, defaults to 256): questions per forward pass of the model (the same answers as 64, about
            20% sooner on 2 CPU cores: fewer, larger matrix products).
        baseline_settings ([`BaselineSettings`], *optional*): overrides the baseline's training settings.
        reference_dir (`str` or `Path`, *optional*): the real recordings for the sim-to-real check; defaults to
            `default_reference_dir()` (`$BIOMECHGPT_REFERENCE_MOTION`, else `../shared/reference_motion/` beside a
            repository checkout). A folder given that does not exist is an error.
        sim_to_real (`bool`, defaults to `True`): run the sim-to-real check. When it does not run (not asked for, or
            no recordings), one line on stderr says why and `metrics.json` records `{"skipped": reason}`.
        wording_trials (`int`, *optional*): trials per task asked every held-out wording of their question
            (`heldout_questions.tsv`); 0 skips the wording check. Defaults to 20 (5 with `quick`).
        parser (`Callable`, *optional*): answer parser, defaults to the corpus's `parse_answer`.
        experiment_options (`dict`, *optional*): more keyword arguments of `run_experiments` (e.g. `settings`).
        write_card (`bool`, defaults to `True`): also write `model_card.md` (and the model folder's README.md).
        progress (`bool`, defaults to `True`): progress bars.

    Returns:
        `dict`: the `metrics.json` payload.
    """
    import torch

    from biomechgpt.evaluation.baseline import BaselineSettings

    from biomechgpt.evaluation.experiments import EXPERIMENTS

    started = time.perf_counter()
    out = Path(out_dir)
    bad = [name for name in experiments if name not in EXPERIMENTS]
    if bad:
        raise UsageError(f"unknown experiment(s) {', '.join(bad)}; choose from {', '.join(EXPERIMENTS)}")
    if wording_trials is None:
        wording_trials = 5 if quick else 20
    if isinstance(wording_trials, bool) or not isinstance(wording_trials, int) or wording_trials < 0:
        raise UsageError(f"wording_trials {wording_trials!r}: expected a whole number >= 0")
    if sim_to_real and reference_dir is not None and not Path(reference_dir).is_dir():
        raise UsageError(f"reference_dir {reference_dir}: not a folder (the real recordings of the sim-to-real "
                           "check)")
    corpus = load_corpus(dataset_dir)
    parser = parser or corpus_parser()
    test = corpus[corpus.split == "test"].sort_values("id", kind="stable")
    if test.empty:
        raise UsageError(f"{dataset_dir}: the QA corpus has no test split")
    wanted = list(tasks) if tasks is not None else [t for t in METRICS_BY_TASK if t in set(test.task)]
    unknown = sorted(set(wanted) - set(METRICS_BY_TASK))
    if unknown:
        raise UsageError(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(METRICS_BY_TASK)}")
    test = test[test.task.isin(wanted)]
    if max_rows_per_task is not None:
        test = test.groupby("task", sort=False).head(max_rows_per_task)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    is_path = isinstance(model_dir, (str, Path))
    model = load_model(model_dir) if is_path else model_dir
    if motion_source is not None:
        motion_for, motion_note = motion_source, "motion given by the caller"
    elif reads_motion(model) and cohort_dir is None:
        raise UsageError("this model reads the motion itself: evaluating it needs the cohort (--cohort), not the "
                           "motion decoded from the corpus's codes")
    else:
        motion_for, motion_note = _motion_source(corpus, cohort_dir, model_dir if is_path else None)
    answers = answer_rows(model, test.reset_index(drop=True), batch_size=batch_size, progress=progress,
                          motion_for=motion_for)
    predictions = predictions_frame(test.reset_index(drop=True), answers, parser)
    timings["biomechgpt_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    settings = baseline_settings or (BaselineSettings.quick(seed) if quick else BaselineSettings(seed=seed))
    baseline = _run_baseline(corpus, wanted, motion_for, settings, progress)
    for family in ("baseline", *settings.families):
        predictions[f"{family}_prediction"] = None
        predictions[f"{family}_confidence"] = None
    for task, rows in predictions.groupby("task", sort=False):
        if task not in baseline.tasks:
            continue
        for family in (None, *settings.families):
            values, conf = baseline.predict_trials(task, list(rows.trial_id), motion_for, family)
            column = family or "baseline"
            predictions.loc[rows.index, f"{column}_prediction"] = pd.Series(values, index=rows.index, dtype=object)
            if conf is not None:
                predictions.loc[rows.index, f"{column}_confidence"] = pd.Series(conf, index=rows.index, dtype=object)
    timings["baseline_s"] = time.perf_counter() - t0

    task_metrics: dict[str, dict] = {}
    for task in wanted:
        rows = predictions[predictions.task == task]
        if rows.empty:
            continue
        refs = list(rows.reference)
        entry: dict[str, Any] = {
            "n": len(rows),
            "biomechgpt": compute_task_metrics(task, list(rows.prediction), refs, list(rows.confidence)),
        }
        entry["biomechgpt"]["n_misrouted"] = int(sum(r is not None and r != task for r in rows.routed_task))
        if METRICS_BY_TASK[task] == "text":
            agreement = _summary_field_agreement(rows, parser)
            entry["biomechgpt"]["notes"].update(agreement.pop("notes", {}))
            entry["biomechgpt"].update(agreement)
        if task in baseline.tasks:
            entry["baseline"] = {**_score_column(task, rows, "baseline"), "family": baseline.tasks[task].selected}
            entry["baseline_families"] = {family: _score_column(task, rows, family) for family in settings.families}
            entry["baseline_selection"] = baseline.summary()[task]
        else:
            entry["baseline"] = {"note": "no non-LLM baseline for free-text answers"}
        task_metrics[task] = entry

    payload: dict[str, Any] = {"tasks": task_metrics, "experiments": {}}
    participant = participant_level_scores(predictions, [t for t in task_metrics if t in baseline.tasks])
    for task, entry in participant.items():
        task_metrics[task]["per_participant"] = entry
    if cohort_dir is not None and "fall_history" in task_metrics:
        from biomechgpt.cohort import load_cohort

        rows = predictions[predictions.task == "fall_history"]
        ceiling = fall_history_ceiling(load_cohort(cohort_dir).participants, list(rows.participant_id))
        task_metrics["fall_history"]["ceiling"] = ceiling
    if sim_to_real:
        where = Path(reference_dir) if reference_dir is not None else default_reference_dir()
        payload["sim_to_real"] = _reference_check(model, baseline, corpus, where, parser)
    else:
        payload["sim_to_real"] = {"skipped": "not asked for (sim_to_real=False, --no-sim-to-real)"}
    if "skipped" in payload["sim_to_real"]:
        print(f"sim-to-real check skipped: {payload['sim_to_real']['skipped']}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    payload["wordings"] = (_wording_check(model, test, predictions, motion_for, parser, wording_trials)
                           if wording_trials else {"skipped": "not asked for (wording_trials=0)"})
    timings["wordings_s"] = time.perf_counter() - t0
    if experiments:
        from biomechgpt.evaluation.experiments import run_experiments

        t0 = time.perf_counter()
        payload["experiments"] = run_experiments(
            experiments, dataset_dir, out / "experiments", quick=quick, seed=seed, parser=parser, progress=progress,
            model_dir=model_dir if is_path else None, cohort_dir=cohort_dir, **(experiment_options or {}))
        timings["experiments_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    payload["info"] = {
        "model": str(model_dir) if is_path else type(model_dir).__name__,
        "dataset": str(dataset_dir),
        "cohort": str(cohort_dir) if cohort_dir is not None else None,
        "split": "test",
        "participants": {split: int(corpus.loc[corpus.split == split, "participant_id"].nunique())
                         for split in ("train", "validation", "test")},
        "baseline_input": motion_note,
        "baseline_settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(settings).items()},
        "headline_metrics": HEADLINE_METRIC,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "seed": seed,
    }
    payload = _json_ready(payload)
    (out / "metrics.json").write_text(json.dumps(payload, indent=2) + "\n")
    _for_parquet(predictions).to_parquet(out / "predictions.parquet", index=False)

    from biomechgpt.evaluation.report import write_report

    write_report(payload, predictions, out)
    if write_card:
        from biomechgpt.evaluation.model_card import write_model_card

        card_options = _card_options(Path(model_dir)) if is_path else {}
        write_model_card(payload, out / "model_card.md", **card_options)
        if is_path and (Path(model_dir) / "config.json").is_file():
            write_model_card(payload, Path(model_dir) / "README.md", **card_options)
    return payload
