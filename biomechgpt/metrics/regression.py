"""`evaluate` metric for biomechgpt's numeric tasks (cadence, walking speed, stride length, TUG and FSST times).

Load it offline from the installed package: `evaluate.load(biomechgpt.metrics.metric_path("regression"))`.
The file is self-contained with its sibling `functional.py`, which `evaluate` copies along.
"""

import datasets
import evaluate

from .functional import regression_metrics

__all__ = ["BiomechGPTRegression"]

_DESCRIPTION = """MAE, RMSE, Pearson r and Bland-Altman bias with 95% limits of agreement of numeric answers. A
prediction of None is an answer that did not parse: the metrics use the parsed pairs and report `n_unparsed`."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[float | None]`): predicted values, None where the answer did not parse.
    references (`list[float]`): true values.
Returns:
    mae, rmse, pearson_r, bias, sd_diff, loa_lower, loa_upper, n, n_parsed, n_unparsed, notes (why a metric is None).
Examples:
    >>> metric = evaluate.load("biomechgpt/metrics/regression.py")
    >>> metric.compute(predictions=[1.0, 2.0, None], references=[1.5, 2.0, 3.0])["mae"]
    0.25
"""

_CITATION = """@article{yang2025biomechgpt,
  title={BiomechGPT: Towards a Biomechanically Fluent Multimodal Foundation Model for
         Clinically Relevant Motion Tasks},
  author={Yang, Ruize and Kennedy, Kevin and Cotton, R. James},
  year={2025}
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BiomechGPTRegression(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
        )

    def _compute(self, predictions, references):
        return regression_metrics(predictions, references)
