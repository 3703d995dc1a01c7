"""The task metrics against values computed by hand, their edge cases, and the offline `evaluate` modules."""

from __future__ import annotations

import math

import pytest

from biomechgpt.metrics import (
    METRICS_BY_TASK,
    UNPARSED_LABEL,
    classification_metrics,
    compute_task_metrics,
    expected_calibration_error,
    metric_path,
    regression_metrics,
    text_overlap_metrics,
)

REFS = ["a", "a", "a", "b", "b", "c"]
PREDS = ["a", "a", "b", "b", None, "a"]  # one unparsed answer (a true "b")


def test_classification_matches_hand_computed_values():
    m = classification_metrics(PREDS, REFS)
    assert m["n"] == 6 and m["n_unparsed"] == 1
    assert m["accuracy"] == pytest.approx(3 / 6)
    # recalls a 2/3, b 1/2, c 0
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    # F1 = 2TP / (support + predicted): a 4/6, b 2/4, c 0/1 (the unparsed answer is a false negative only)
    assert m["per_class_f1"] == pytest.approx({"a": 2 / 3, "b": 0.5, "c": 0.0})
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)
    cm = m["confusion_matrix"]
    assert cm["labels"] == ["a", "b", "c"]
    assert cm["predicted_labels"] == ["a", "b", "c", UNPARSED_LABEL]
    assert cm["counts"] == [[2, 1, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0]]
    assert m["ece"] is None and "ece" in m["notes"]


def test_classification_agrees_with_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    filled = [p if p is not None else UNPARSED_LABEL for p in PREDS]
    m = classification_metrics(PREDS, REFS)
    assert m["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(REFS, filled, labels=["a", "b", "c"],
                                                                   average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(sklearn_metrics.balanced_accuracy_score(REFS, filled))


def test_expected_calibration_error_by_hand():
    # bins of width 0.1: {0.95, 0.95} acc 1/2 -> |0.5-0.95|; {0.55} acc 1 -> |1-0.55|; {0.25} acc 0 -> |0-0.25|
    correct = [True, False, True, False]
    conf = [0.95, 0.95, 0.55, 0.25]
    expected = 0.5 * 0.45 + 0.25 * 0.45 + 0.25 * 0.25
    assert expected_calibration_error(correct, conf) == pytest.approx(expected)
    assert expected_calibration_error([True, True], [1.0, 1.0]) == 0.0
    assert expected_calibration_error([], []) is None
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error([True], [1.5])


def test_classification_calibration_skips_missing_confidences():
    m = classification_metrics(["a", None, "b"], ["a", "b", "b"], confidences=[0.9, None, 0.6])
    assert m["n_confidence"] == 2
    assert m["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.4)


def test_classification_single_class_and_all_unparsed():
    m = classification_metrics(["a", "a"], ["a", "a"])
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["balanced_accuracy"] == 1.0
    assert "balanced_accuracy" in m["notes"]
    m = classification_metrics([None, None], ["a", "b"])
    assert m["accuracy"] == 0.0 and m["macro_f1"] == 0.0 and m["n_unparsed"] == 2


def test_classification_empty_and_bad_input():
    m = classification_metrics([], [])
    assert m["n"] == 0 and m["accuracy"] is None and m["notes"]["accuracy"] == "no examples"
    with pytest.raises(ValueError, match="differ in length"):
        classification_metrics(["a"], ["a", "b"])


def test_regression_matches_hand_computed_values():
    m = regression_metrics([2.0, 4.0, 6.0, None], [1.0, 3.0, 8.0, 5.0])
    assert (m["n"], m["n_parsed"], m["n_unparsed"]) == (4, 3, 1)
    # differences 1, 1, -2
    assert m["mae"] == pytest.approx(4 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(2))
    assert m["bias"] == pytest.approx(0.0)
    assert m["sd_diff"] == pytest.approx(math.sqrt(3))
    assert m["loa_lower"] == pytest.approx(-1.96 * math.sqrt(3))
    assert m["loa_upper"] == pytest.approx(1.96 * math.sqrt(3))
    # centred: (-2, 0, 2) and (-3, -1, 4)
    assert m["pearson_r"] == pytest.approx(14 / math.sqrt(8 * 26))


@pytest.mark.parametrize(
    ("preds", "refs", "reason"),
    [
        ([3.0, 3.0, 3.0], [1.0, 2.0, 3.0], "predictions are constant"),
        ([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], "references are constant"),
        ([1.0], [2.0], "needs at least two parsed answers"),
    ],
)
def test_regression_undefined_pearson_is_null_with_reason(preds, refs, reason):
    m = regression_metrics(preds, refs)
    assert m["pearson_r"] is None and m["notes"]["pearson_r"] == reason
    assert m["mae"] is not None


def test_regression_nothing_parsed_or_empty():
    m = regression_metrics([None, float("nan")], [1.0, 2.0])
    assert m["n_unparsed"] == 2 and m["mae"] is None and m["notes"]["mae"] == "no parsed answers"
    m = regression_metrics([], [])
    assert m["n"] == 0 and m["notes"]["rmse"] == "no examples"
    with pytest.raises(ValueError, match="finite"):
        regression_metrics([1.0], [None])


def test_text_overlap():
    m = text_overlap_metrics(["slow gait with a cane", None], ["slow gait, uses a cane", "normal gait"])
    # first: 5 vs 5 words, 4 shared -> token F1 0.8; LCS "slow gait a cane" = 4 -> 0.8; second: empty -> 0
    assert m["token_f1"] == pytest.approx(0.4)
    assert m["rouge_l"] == pytest.approx(0.4)
    assert m["n_unparsed"] == 1 and m["exact_match"] == 0.0


def test_registry_dispatch_and_label_order():
    assert set(METRICS_BY_TASK) >= {"activity", "impairment", "cadence", "tug_time", "summary"}
    m = compute_task_metrics("activity", ["walking", "running"], ["running", "walking"], [0.6, 0.7])
    assert m["confusion_matrix"]["labels"] == ["walking", "running"]  # ACTIVITIES order, not alphabetical
    assert compute_task_metrics("cadence", [100.0, 110.0], [101.0, 112.0])["pearson_r"] == pytest.approx(1.0)
    assert "token_f1" in compute_task_metrics("summary", ["a b"], ["a b"])
    with pytest.raises(ValueError, match="unknown task"):
        compute_task_metrics("height", [1.0], [1.0])


def test_evaluate_modules_load_offline():
    evaluate = pytest.importorskip("evaluate")
    clf = evaluate.load(metric_path("classification"))
    out = clf.compute(predictions=PREDS, references=REFS, confidences=[0.9] * 5 + [None])
    assert out["macro_f1"] == pytest.approx(classification_metrics(PREDS, REFS)["macro_f1"])
    assert out["n_unparsed"] == 1 and out["n_confidence"] == 5
    reg = evaluate.load(metric_path("regression"))
    assert reg.compute(predictions=[1.0, 2.0, None], references=[1.5, 2.0, 3.0])["mae"] == pytest.approx(0.25)
    with pytest.raises(ValueError):
        metric_path("bleu")
