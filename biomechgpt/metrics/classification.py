"""`evaluate` metric for biomechgpt's closed-set tasks (activity, impairment, diagnosis, assistive device, ...).

Load it offline from the installed package: `evaluate.load(biomechgpt.metrics.metric_path("classification"))`.
The file is self-contained with its sibling `functional.py`, which `evaluate` copies along.
"""

import datasets
import evaluate

from .functional import classification_metrics

__all__ = ["BiomechGPTClassification"]

_DESCRIPTION = """Accuracy, balanced accuracy, macro-F1, per-class F1, confusion matrix and expected calibration error
of closed-set answers. A prediction of None is an answer that did not parse: it counts as wrong and is reported in
`n_unparsed` (and as an extra confusion-matrix column)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str | None]`): predicted labels, None where the answer did not parse.
    references (`list[str]`): true labels.
    confidences (`list[float | None]`, *optional*): the model's probability of each answer, for the calibration error.
    labels (`list[str]`, *optional*): label order of the confusion matrix.
    n_bins (`int`, *optional*, defaults to 10): calibration bins.
Returns:
    accuracy, balanced_accuracy, macro_f1, per_class_f1, confusion_matrix, ece, n, n_unparsed, n_confidence, notes.
Examples:
    >>> metric = evaluate.load("biomechgpt/metrics/classification.py")
    >>> metric.compute(predictions=["walking", None], references=["walking", "running"])["accuracy"]
    0.5
"""

_CITATION = """@article{yang2025biomechgpt,
  title={BiomechGPT: Towards a Biomechanically Fluent Multimodal Foundation Model for
         Clinically Relevant Motion Tasks},
  author={Yang, Ruize and Kennedy, Kevin and Cotton, R. James},
  year={2025}
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BiomechGPTClassification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, confidences=None, labels=None, n_bins=10):
        return classification_metrics(predictions, references, confidences=confidences, labels=labels, n_bins=n_bins)
