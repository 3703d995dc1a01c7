"""biomechgpt.dataset_builder: the BiomechGPT question–answer corpus.

`build_dataset(cohort_dir, tokenizer_dir, out_dir, seed=0)` (or `biomechgpt build-dataset`) turns a simulated cohort
and a MotionTokenizer into a Hub-style dataset folder that `datasets.load_dataset(folder)` reads;
`parse_answer(task, text)` reads any answer back into its structured target (used by evaluation and `ask`);
`TASKS` is the task registry. The parser and the registry import no heavy library; the builder (which needs
`datasets`) is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .lexicon import label_names
from .parsing import ParsedAnswer, parse_answer, summary_fields
from .tasks import (
    CLASSIFICATION_TASKS,
    FALL_HISTORY_LABELS,
    IMPAIRMENT_LABELS,
    NUMERIC_TASKS,
    TASK_NAMES,
    TASKS,
    Task,
    convert_unit,
)
from .templates import QUESTIONS, format_summary_target, render_answer, render_summary

__all__ = [
    "BiomechGPTQABuilder",
    "BiomechGPTQAConfig",
    "FEATURES",
    "build_dataset",
    "questions_for_trial",
    "ParsedAnswer",
    "parse_answer",
    "summary_fields",
    "Task",
    "TASKS",
    "TASK_NAMES",
    "CLASSIFICATION_TASKS",
    "NUMERIC_TASKS",
    "IMPAIRMENT_LABELS",
    "FALL_HISTORY_LABELS",
    "convert_unit",
    "label_names",
    "QUESTIONS",
    "render_answer",
    "render_summary",
    "format_summary_target",
]

_LAZY = {name: ".builder" for name in
         ("BiomechGPTQABuilder", "BiomechGPTQAConfig", "FEATURES", "build_dataset", "questions_for_trial")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
