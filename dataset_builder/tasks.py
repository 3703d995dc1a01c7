"""The task registry of the BiomechGPT question–answer corpus.

Every question in the corpus belongs to one task. A task says what kind of answer it expects (a label from a closed
set, a number with a unit, or a free-text summary), where its ground truth comes from in the cohort (the participants
table or the trials table), and which trials it can be asked about. Evaluation and the model's `ask` read the same
registry, so a label or a unit is defined here once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal
from collections.abc import Mapping

from biomechgpt.labels import ACTIVITIES, AFFECTED_SIDES, ASSISTIVE_DEVICES, DIAGNOSES

__all__ = [
    "Task",
    "TASKS",
    "TASK_NAMES",
    "CLASSIFICATION_TASKS",
    "NUMERIC_TASKS",
    "SUMMARY_FIELDS",
    "IMPAIRMENT_LABELS",
    "FALL_HISTORY_LABELS",
    "UNIT_DECIMALS",
    "convert_unit",
    "round_for_unit",
    "format_value",
]

# Binary participant-level labels that `biomechgpt.labels` stores as booleans in the cohort; the corpus names them.
IMPAIRMENT_LABELS: tuple[str, ...] = ("unimpaired", "impaired")
FALL_HISTORY_LABELS: tuple[str, ...] = ("non_faller", "faller")

# How a clinician would say a number in each unit: whole steps/min and centimetres, speeds and stride in metres to
# the centimetre, km/h and seconds to one decimal.
UNIT_DECIMALS: dict[str, int] = {"steps/min": 0, "m/s": 2, "km/h": 1, "m": 2, "cm": 0, "s": 1}

# unit -> (dimension, factor from the dimension's SI unit)
_UNIT_FACTORS: dict[str, tuple[str, float]] = {
    "steps/min": ("rate", 1.0),
    "m/s": ("speed", 1.0),
    "km/h": ("speed", 3.6),
    "m": ("length", 1.0),
    "cm": ("length", 100.0),
    "s": ("time", 1.0),
}


@dataclass(frozen=True)
class Task:
    """One kind of question.

    Args:
        name (`str`): the task key, used in the corpus `task` column.
        kind (`str`): "classification" (answer is one of `labels`), "numeric" (a number in `unit`, or in one of
            `units`) or "summary" (free text whose components the parser recovers).
        description (`str`): one line for the dataset card.
        labels (`tuple[str, ...]`): the closed label set of a classification task.
        unit (`str`, *optional*): the canonical unit of a numeric task (ground truth is stored in it).
        units (`tuple[str, ...]`): every unit questions may ask in; the first is `unit`.
        source (`str`): "participant" or "trial": which cohort table holds the ground truth.
        column (`str`, *optional*): the cohort column that holds the ground truth.
        activities (`tuple[str, ...]`, *optional*): only trials of these activities get this task.
        title (`str`): how the report, the model card and the Hub's model index name the task.
    """

    name: str
    kind: Literal["classification", "numeric", "summary"]
    description: str
    labels: tuple[str, ...] = ()
    unit: str | None = None
    units: tuple[str, ...] = ()
    source: Literal["participant", "trial"] = "participant"
    column: str | None = None
    activities: tuple[str, ...] | None = None
    title: str = ""
    _bool_labels: tuple[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind == "classification" and not self.labels:
            raise ValueError(f"task {self.name}: a classification task needs labels")
        if self.kind == "numeric" and (self.unit is None or not self.units or self.units[0] != self.unit):
            raise ValueError(f"task {self.name}: a numeric task needs `unit` and `units` starting with it")

    def target(self, participant: Mapping[str, Any], trial: Mapping[str, Any]) -> str | float | None:
        """The ground truth of this task for one trial (label, or value in `unit`), or None when undefined.

        The summary task has no single target; the builder composes it from the other tasks.
        """
        if self.kind == "summary":
            return None
        if self.activities is not None and trial["activity"] not in self.activities:
            return None
        raw = (participant if self.source == "participant" else trial)[self.column]
        if self.kind == "numeric":
            value = float(raw) if raw is not None else math.nan
            return value if math.isfinite(value) and value > 0 else None
        if self._bool_labels is not None:
            return self._bool_labels[1] if bool(raw) else self._bool_labels[0]
        return str(raw)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("activity", "classification", "Which activity or clinical test the trial shows.", ACTIVITIES,
             source="trial", column="activity", title="Activity recognition"),
        Task("impairment", "classification", "Whether the participant's movement is impaired.", IMPAIRMENT_LABELS,
             column="impaired", _bool_labels=("unimpaired", "impaired"), title="Impairment detection"),
        Task("impairment_side", "classification", "Which side is affected (none, left, right, bilateral).",
             AFFECTED_SIDES, column="affected_side", title="Affected side"),
        Task("diagnosis", "classification", "The participant's diagnosis, or healthy.", DIAGNOSES, column="diagnosis",
             title="Diagnosis"),
        Task("assistive_device", "classification", "The assistive device the participant uses, if any.",
             ASSISTIVE_DEVICES, column="assistive_device", title="Assistive device"),
        Task("fall_history", "classification", "Whether the participant has a history of falls.",
             FALL_HISTORY_LABELS, column="fall_history", _bool_labels=("non_faller", "faller"), title="Fall history"),
        Task("cadence", "numeric", "Cadence of a gait trial in steps per minute.", unit="steps/min",
             units=("steps/min",), source="trial", column="cadence_steps_per_min", title="Cadence (steps/min)"),
        Task("walking_speed", "numeric", "Walking (or running) speed of a gait trial.", unit="m/s",
             units=("m/s", "km/h"), source="trial", column="walking_speed_m_s", title="Walking speed (m/s)"),
        Task("stride_length", "numeric", "Stride length of a gait trial.", unit="m", units=("m", "cm"),
             source="trial", column="stride_length_m", title="Stride length (m)"),
        Task("tug_time", "numeric", "Time to complete the Timed Up and Go test.", unit="s", units=("s",),
             source="trial", column="test_time_s", activities=("timed_up_and_go",), title="Timed Up and Go time (s)"),
        Task("fsst_time", "numeric", "Time to complete the Four Square Step Test.", unit="s", units=("s",),
             source="trial", column="test_time_s", activities=("four_square_step_test",),
             title="Four Square Step Test time (s)"),
        Task("summary", "summary", "A short clinical description of the trial combining the tasks above.",
             title="Trial summary"),
    )
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)
CLASSIFICATION_TASKS: tuple[str, ...] = tuple(n for n, t in TASKS.items() if t.kind == "classification")
NUMERIC_TASKS: tuple[str, ...] = tuple(n for n, t in TASKS.items() if t.kind == "numeric")
# What a summary states, in the order its canonical target string lists them.
SUMMARY_FIELDS: tuple[str, ...] = CLASSIFICATION_TASKS + NUMERIC_TASKS


def convert_unit(value: float, from_unit: str, to_unit: str) -> float:
    """Convert `value` between two units of the same quantity (e.g. "m/s" -> "km/h")."""
    try:
        dim_from, f_from = _UNIT_FACTORS[from_unit]
        dim_to, f_to = _UNIT_FACTORS[to_unit]
    except KeyError as err:
        raise ValueError(f"unknown unit {err.args[0]!r}; known: {', '.join(_UNIT_FACTORS)}") from None
    if dim_from != dim_to:
        raise ValueError(f"cannot convert {from_unit} to {to_unit}")
    return value / f_from * f_to


def round_for_unit(value: float, unit: str) -> float:
    """Round as a clinician would state the number in `unit` (see `UNIT_DECIMALS`)."""
    return round(float(value), UNIT_DECIMALS[unit])


def format_value(value: float, unit: str) -> str:
    """The number as written in answers: `round_for_unit` digits, no trailing exponent."""
    return f"{round_for_unit(value, unit):.{UNIT_DECIMALS[unit]}f}"
