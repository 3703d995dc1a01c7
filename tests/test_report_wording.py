"""The report and the model card as a clinical reader meets them: every abbreviation defined before its first use,
tasks, metrics and labels in words, confusion matrices in percentages of each true class; `metrics.json` keeps its
machine keys."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from biomechgpt.evaluation.model_card import render_model_card
from biomechgpt.evaluation.report import GLOSSARY, render_report, row_percentages
from biomechgpt.metrics import compute_task_metrics


def _entry(task: str, predictions: list, references: list, confidences: list | None = None) -> dict:
    ours = compute_task_metrics(task, predictions, references, confidences)
    families = {"gbt": compute_task_metrics(task, references, references, confidences),
                "cnn": compute_task_metrics(task, predictions[::-1], references, confidences)}
    return {"n": len(references), "biomechgpt": ours, "baseline": {**families["gbt"], "family": "gbt"},
            "baseline_families": families}


@pytest.fixture(scope="module")
def metrics() -> dict:
    sides = ["left", "right", "none", "none", "bilateral", "left"]
    activities = ["walking", "timed_up_and_go", "sit_to_stand", "walking"]
    cadence = [100.0, 110.0, 95.0, 120.0]
    return {
        "tasks": {
            "activity": _entry("activity", ["walking", "sit_to_stand", "sit_to_stand", None], activities,
                               [0.9, 0.6, 0.8, None]),
            "impairment_side": _entry("impairment_side", ["left", "left", "none", "right", "bilateral", "left"],
                                      sides, [0.7] * 6),
            "cadence": _entry("cadence", [102.0, 108.0, 99.0, 118.0], cadence),
        },
        "sim_to_real": {"recordings": [{"file": "walk.mot", "activity": {
            "expected": "walking", "biomechgpt": "timed_up_and_go", "confidence": 0.5, "baseline": "sit_to_stand"}}],
            "summary": {"activity": {"n": 1, "biomechgpt_accuracy": 0.0, "baseline_accuracy": 0.0}}},
        "experiments": {},
        "info": {"model": "m", "dataset": "d", "split": "test", "seed": 0,
                 "timings_s": {"biomechgpt_s": 1.0, "baseline_s": 2.0, "total_s": 3.0}},
    }


def test_row_percentages_make_every_true_class_sum_to_100():
    counts = [[3, 1, 0], [0, 0, 0], [2, 2, 4]]  # a class with no test questions keeps a row of zeros
    percent = row_percentages(counts)
    np.testing.assert_allclose(percent, [[75, 25, 0], [0, 0, 0], [25, 25, 50]])
    np.testing.assert_allclose(percent.sum(axis=1), [100, 0, 100])
    assert counts == [[3, 1, 0], [0, 0, 0], [2, 2, 4]]  # the counts themselves are left as they are


@pytest.mark.parametrize("term", ["gbt", "cnn", "ECE", "macro-F1", "Pearson r", "MAE", "balanced accuracy",
                                  "95% limits of agreement", "unparsed"])
def test_report_defines_each_term_once_before_the_tables(metrics, term):
    report = render_report(metrics, {"activity": "figures/confusion_activity.png"})
    definition = f"- **{term}**: "
    assert report.count(definition) == 1
    assert report.index(definition) < report.index("| task |")


def test_report_names_tasks_metrics_and_labels_in_words(metrics):
    before = copy.deepcopy(metrics)
    report = render_report(metrics, {"activity": "figures/confusion_activity.png"})
    assert metrics == before  # the payload (metrics.json) keeps its machine keys
    assert "| Affected side | 6 | macro-F1 |" in report and "| Cadence (steps/min) | 4 | Pearson r |" in report
    assert "| Activity recognition | baseline: gbt |" in report
    assert "![Activity recognition](figures/confusion_activity.png)" in report
    assert "| walk.mot | Activity recognition | walking | timed up and go | 0.50 | sit-to-stand |" in report
    assert "Wall time (s): BiomechGPT answers 1.0, baseline training and answers 2.0, total 3.0." in report
    assert "each row sums to 100%" in report
    # no snake_case key outside file paths
    assert not re.findall(r"(?<![/\w])[a-z]+_[a-z_]+\b(?![/.\w])", report)


def test_model_card_defines_its_metrics_and_keeps_the_hub_keys(metrics):
    card = render_model_card(metrics)
    front, body = card.split("\n---\n", 1)
    assert "type: macro_f1" in front and "type: pearson_r" in front  # model-index keeps the metric keys
    for term in ("macro-F1", "Pearson r", "MAE", "accuracy", "unparsed"):
        assert body.count(f"- **{term}**: ") == 1 and body.index(f"- **{term}**: ") < body.index("| task |")
    assert "| Affected side | 6 | macro-F1 |" in body and "| Cadence (steps/min) | 4 | MAE |" in body
    assert not re.findall(r"\| (macro_f1|pearson_r|mae|impairment_side) \|", body)
    for definition in GLOSSARY.values():
        assert "_" not in definition
