"""What the evaluation and the experiments share: reading the QA corpus, asking the model, reading its answers.

`biomechgpt.evaluation.evaluate` (the main evaluation) and `biomechgpt.evaluation.experiments` (models trained with
small budgets) both score a model on the corpus's test rows the same way: `load_corpus`, `load_model`, `answer_rows`,
then `predictions_frame` parses each answer with the corpus's parser (`corpus_parser`) into the label or the number
(in the task's unit) that the task's metric compares with the reference. This module imports neither of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biomechgpt.dataset_builder.corpus import CORPUS_COLUMNS, load_corpus
from biomechgpt.errors import UsageError
from biomechgpt.metrics import METRICS_BY_TASK

__all__ = [
    "REQUIRED_COLUMNS",
    "load_corpus",
    "corpus_parser",
    "task_units",
    "convert_value",
    "parse_prediction",
    "reads_motion",
    "answer_rows",
    "answer_field",
    "predictions_frame",
    "load_model",
]

REQUIRED_COLUMNS = CORPUS_COLUMNS
"""The QA corpus columns the evaluation reads (the corpus contract's, `dataset_builder.corpus`)."""


# ----------------------------------------------------------------------------------------------------------------
# Inputs


def corpus_parser() -> Callable[[str, str], Any]:
    """The QA corpus's answer parser, `parse_answer(task, text)` of `biomechgpt.dataset_builder`."""
    try:
        from biomechgpt.dataset_builder import parse_answer
    except ImportError:  # the package re-export is the contract; the module is where it lives
        from biomechgpt.dataset_builder.parsing import parse_answer
    return parse_answer


def task_units() -> dict[str, str]:
    """The unit of each numeric task (`{task: unit}`) from the corpus's task list; empty without the builder."""
    try:
        from biomechgpt.dataset_builder.tasks import TASKS
    except ImportError:
        return {}
    return {name: task.unit for name, task in TASKS.items() if task.unit}


def convert_value(value: float | None, from_unit: str | None, to_unit: str | None) -> float | None:
    """`value` in `to_unit`; unchanged when either unit is unknown or they agree."""
    if value is None or not from_unit or not to_unit or from_unit == to_unit:
        return value
    from biomechgpt.dataset_builder.tasks import convert_unit

    return convert_unit(value, from_unit, to_unit)


def parse_prediction(task: str, text: str | None, parser: Callable[[str, str], Any]) -> tuple[Any, float | None,
                                                                                                   str | None]:
    """`(label, value, unit)` of an answer sentence through the corpus's parser; `(None, None, None)` when the text
    does not parse. Accepts the parser returning a dict, a `(label, value, unit)` tuple, a label or a number."""
    if text is None or not str(text).strip():
        return None, None, None
    try:
        parsed = parser(task, str(text))
    except ValueError:
        return None, None, None
    if parsed is None:
        return None, None, None
    if isinstance(parsed, dict):
        return parsed.get("label"), parsed.get("value"), parsed.get("unit")
    for attribute in ("label", "value"):  # a dataclass-like result
        if hasattr(parsed, attribute) and not isinstance(parsed, (str, tuple)):
            return getattr(parsed, "label", None), getattr(parsed, "value", None), getattr(parsed, "unit", None)
    if isinstance(parsed, tuple) and len(parsed) == 3:
        return parsed
    if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
        return None, float(parsed), None
    return str(parsed), None, None


# ----------------------------------------------------------------------------------------------------------------
# Asking the model


def reads_motion(model: Any) -> bool:
    """Whether `model` reads the motion itself (a motion encoder), so it must be given motions, not codes."""
    return getattr(getattr(model, "config", None), "motion_input", "codes") != "codes"


def answer_rows(model: Any, rows: pd.DataFrame, *, batch_size: int = 256, chunk_size: int = 1024,
                progress: bool = True, motion_for: Callable[[str], Any] | None = None) -> list[Any]:
    """The model's answers to `rows` (columns `question`, `motion_codes`, `trial_id`), in row order.

    The model routes each question to its task from the wording itself, as `biomechgpt ask` does, so a misrouted
    question shows up as a wrong or unparsed answer rather than being helped by the corpus's task column. A model
    that reads continuous motion is given each trial's `Motion` from `motion_for` (the cohort's stored motion); the
    others its motion codes.
    """
    from tqdm.auto import tqdm

    if reads_motion(model) and motion_for is None:
        raise UsageError("this model reads the motion itself: evaluating it needs the cohort (--cohort)")
    order = np.argsort(rows["trial_id"].to_numpy(), kind="stable")  # a trial's questions share one motion prefix
    motion_of: dict[str, Any] = {}
    motions, questions = [], []
    for i in order:
        row = rows.iloc[i]
        trial = row["trial_id"]
        if trial not in motion_of:
            motion_of.clear()  # rows are sorted by trial: one motion object at a time, and the same one for its rows
            motion_of[trial] = (motion_for(trial) if reads_motion(model) else
                                [int(c) for c in row["motion_codes"]])
        motions.append(motion_of[trial])
        questions.append(str(row["question"]))
    answers: list[Any] = [None] * len(rows)
    bar = tqdm(total=len(rows), desc="answering", unit="q", disable=not progress)
    for start in range(0, len(order), chunk_size):
        chunk = slice(start, start + chunk_size)
        batch = model.answer_batch(motions[chunk], questions[chunk], batch_size=batch_size)
        for i, answer in zip(order[chunk], batch):
            answers[i] = answer
        bar.update(len(questions[chunk]))
    bar.close()
    return answers


def answer_field(answer: Any, name: str) -> Any:
    """One field (`"answer"`, `"task"`, `"confidence"`, ...) of a model's answer, an object or a dict."""
    return answer.get(name) if isinstance(answer, dict) else getattr(answer, name, None)


def predictions_frame(rows: pd.DataFrame, answers: Sequence[Any], parser: Callable[[str, str], Any]) -> pd.DataFrame:
    """One row per corpus row with the model's answer read back: `reference` and `prediction` are labels for a
    closed-set task, numbers in the task's unit for a numeric one (an answer in another quantity's unit is no
    answer), the sentences for free text; also `routed_task` and, for closed-set tasks, `confidence`."""
    units = task_units()
    records = []
    for (_, row), answer in zip(rows.iterrows(), answers):
        task = row["task"]
        text = answer_field(answer, "answer")
        label, value, unit = parse_prediction(task, text, parser)
        kind = METRICS_BY_TASK[task]
        if kind == "regression":
            canonical = units.get(task)
            reference = convert_value(float(row["target_value"]), row["target_unit"], canonical)
            if value is not None:
                try:
                    value = convert_value(float(value), unit or row["target_unit"], canonical)
                except ValueError:  # a number in a unit of another quantity: not an answer to this question
                    value = None
            prediction: Any = value
        elif kind == "classification":
            reference, prediction = str(row["target_label"]), (None if label is None else str(label))
        else:
            reference, prediction = str(row["answer"]), (None if text is None else str(text))
        records.append({
            "id": row["id"], "task": task, "trial_id": row["trial_id"], "participant_id": row.get("participant_id"),
            "question": row["question"], "reference_answer": row["answer"], "reference": reference,
            "answer": text, "routed_task": answer_field(answer, "task"), "prediction": prediction,
            "confidence": answer_field(answer, "confidence") if kind == "classification" else None,
        })
    return pd.DataFrame.from_records(records)


def load_model(model_dir: str | Path):
    """A trained model folder (`biomechgpt train --out`) as a `BiomechGPTForCausalLM` in eval mode."""
    from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTForCausalLM

    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise UsageError(f"{folder}: not a model folder (no config.json; train one with biomechgpt train)")
    model = BiomechGPTForCausalLM.from_pretrained(folder)
    model.eval()
    return model
