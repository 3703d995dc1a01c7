"""Scoring of biomechgpt's tasks: which metric each task uses, and the metrics themselves.

Two ways in:
- `compute_task_metrics(task, predictions, references, confidences)` (plain Python, fast; what `biomechgpt evaluate`
  uses) looks the task up in `METRICS_BY_TASK`.
- The same metrics as `evaluate` modules, loadable offline from the installed package::

      import evaluate
      from biomechgpt.metrics import metric_path

      accuracy_etc = evaluate.load(metric_path("classification"))
      accuracy_etc.compute(predictions=["walking", None], references=["walking", "running"])

Predictions of `None` are answers that did not parse; every metric counts them (`n_unparsed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from biomechgpt.dataset_builder.tasks import TASKS
from biomechgpt.labels import ACTIVITIES, AFFECTED_SIDES, ASSISTIVE_DEVICES, DIAGNOSES
from biomechgpt.metrics.functional import (
    UNPARSED_LABEL,
    classification_metrics,
    expected_calibration_error,
    regression_metrics,
    text_overlap_metrics,
)

__all__ = [
    "METRICS_BY_TASK",
    "CLASSIFICATION_TASKS",
    "NUMERIC_TASKS",
    "TEXT_TASKS",
    "LABEL_ORDER",
    "HEADLINE_METRIC",
    "UNPARSED_LABEL",
    "compute_task_metrics",
    "classification_metrics",
    "regression_metrics",
    "text_overlap_metrics",
    "expected_calibration_error",
    "metric_path",
]

# The kind of metric that scores each kind of task in the registry (also the name of the `evaluate` module, except
# "text").
_METRIC_OF_KIND: dict[str, str] = {"classification": "classification", "numeric": "regression", "summary": "text"}
# task -> the kind of metric that scores it, derived from the corpus's task registry (`dataset_builder.tasks.TASKS`)
METRICS_BY_TASK: dict[str, str] = {name: _METRIC_OF_KIND[task.kind] for name, task in TASKS.items()}
CLASSIFICATION_TASKS: tuple[str, ...] = tuple(t for t, k in METRICS_BY_TASK.items() if k == "classification")
NUMERIC_TASKS: tuple[str, ...] = tuple(t for t, k in METRICS_BY_TASK.items() if k == "regression")
TEXT_TASKS: tuple[str, ...] = tuple(t for t, k in METRICS_BY_TASK.items() if k == "text")

# Row/column order of confusion matrices where the label set is shared; other tasks sort their labels.
LABEL_ORDER: dict[str, tuple[str, ...]] = {
    "activity": ACTIVITIES,
    "diagnosis": DIAGNOSES,
    "assistive_device": ASSISTIVE_DEVICES,
    "impairment_side": AFFECTED_SIDES,
}

# The one number per kind that tables lead with (and that "better" is judged on; higher is better for both).
HEADLINE_METRIC: dict[str, str] = {"classification": "macro_f1", "regression": "pearson_r", "text": "token_f1"}


def metric_path(kind: str) -> str:
    """Path of the `evaluate` module file for `kind` ("classification" or "regression") inside the package."""
    if kind not in ("classification", "regression"):
        raise ValueError(f"metric kind must be 'classification' or 'regression', got {kind!r}")
    return str(Path(__file__).with_name(f"{kind}.py"))


def compute_task_metrics(
    task: str,
    predictions: Sequence,
    references: Sequence,
    confidences: Sequence[float | None] | None = None,
) -> dict:
    """Scores one task's parsed answers with the metric `METRICS_BY_TASK[task]`.

    Args:
        task (`str`): a key of `METRICS_BY_TASK`.
        predictions (`list`): parsed answers (labels, numbers or text); `None` where the answer did not parse.
        references (`list`): the targets.
        confidences (`list[float | None]`, *optional*): reported probabilities, for the calibration of closed-set
            tasks (ignored otherwise).

    Returns:
        `dict` of JSON-serialisable metrics, including `n` and `n_unparsed`; undefined metrics are `None` with the
        reason in `notes`.
    """
    kind = METRICS_BY_TASK.get(task)
    if kind is None:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(METRICS_BY_TASK)}")
    if kind == "classification":
        seen = {str(r) for r in references} | {str(p) for p in predictions if p is not None}
        known = [label for label in LABEL_ORDER.get(task, ()) if label in seen]
        return classification_metrics(predictions, references, confidences, labels=known + sorted(seen - set(known)))
    if kind == "regression":
        return regression_metrics(predictions, references)
    return text_overlap_metrics(predictions, references)
