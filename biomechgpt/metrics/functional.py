"""Metric arithmetic for biomechgpt's tasks, numpy only.

The `evaluate` modules next to this file (`classification.py`, `regression.py`) wrap these functions; the task
registry in `biomechgpt.metrics` calls them directly so scoring never pays for importing `evaluate`.

Conventions every function here keeps:
- A prediction of `None` is an answer that did not parse. It is counted (`n_unparsed`), never dropped silently:
  classification scores it as wrong; numeric metrics are computed on the parsed pairs and report the count.
- A metric that is undefined for the inputs (Pearson r of constant predictions, anything on zero examples) is
  `None`, and `notes[metric]` says why. Results are plain JSON types.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "UNPARSED_LABEL",
    "classification_metrics",
    "regression_metrics",
    "text_overlap_metrics",
    "expected_calibration_error",
]

# Column name of the confusion matrix for answers that did not parse to any label.
UNPARSED_LABEL = "(unparsed)"


def _is_missing(value) -> bool:
    if value is None:
        return True
    return isinstance(value, float) and math.isnan(value)


def _as_label(value) -> str | None:
    return None if _is_missing(value) else str(value)


def _as_float(value) -> float | None:
    if _is_missing(value):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def expected_calibration_error(
    correct: Sequence[bool], confidences: Sequence[float], n_bins: int = 10
) -> float | None:
    """Expected calibration error with `n_bins` equal-width confidence bins.

    ECE = sum over bins of (bin size / n) * |accuracy in bin - mean confidence in bin|. Bins are closed on the right
    (a confidence of exactly 1.0 falls in the last bin, 0.0 in the first). Returns `None` for no examples.
    """
    correct_arr = np.asarray(correct, dtype=np.float64)
    conf = np.asarray(confidences, dtype=np.float64)
    if correct_arr.shape != conf.shape:
        raise ValueError(f"correct and confidences differ in length ({correct_arr.size} vs {conf.size})")
    if conf.size == 0:
        return None
    if np.any((conf < 0) | (conf > 1)) or not np.all(np.isfinite(conf)):
        raise ValueError("confidences must be probabilities in [0, 1]")
    # bin b holds confidences in (b/n, (b+1)/n]; 0.0 joins the first bin
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct_arr[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def classification_metrics(
    predictions: Sequence[str | None],
    references: Sequence[str],
    confidences: Sequence[float | None] | None = None,
    labels: Sequence[str] | None = None,
    n_bins: int = 10,
) -> dict:
    """Accuracy, balanced accuracy, macro-F1, per-class F1, confusion matrix and calibration of closed-set answers.

    Args:
        predictions (`list[str | None]`): predicted labels; `None` for an answer that did not parse (counted wrong).
        references (`list[str]`): true labels.
        confidences (`list[float | None]`, *optional*): the model's reported probability of its answer; entries that
            are `None` (e.g. unparsed answers) are left out of the calibration error, which reports its own count.
        labels (`list[str]`, *optional*): the label order of the confusion matrix and per-class F1. Defaults to the
            sorted union of true and predicted labels; labels seen in the data but not listed are appended.
        n_bins (`int`, defaults to 10): confidence bins of the calibration error.

    Returns:
        `dict` with `n`, `n_unparsed`, `accuracy`, `balanced_accuracy` (mean recall over the true classes),
        `macro_f1` (mean F1 over the classes that occur as truth or prediction, as scikit-learn), `per_class_f1`,
        `confusion_matrix` = `{"labels": rows, "predicted_labels": columns, "counts": rows x columns}` (an extra
        `UNPARSED_LABEL` column when any answer did not parse), `ece`, `n_confidence` and `notes`.
    """
    if len(predictions) != len(references):
        raise ValueError(f"predictions and references differ in length ({len(predictions)} vs {len(references)})")
    preds = [_as_label(p) for p in predictions]
    refs = [_as_label(r) for r in references]
    if any(r is None for r in refs):
        raise ValueError("references must not contain missing labels")
    n = len(refs)
    n_unparsed = sum(p is None for p in preds)
    seen = sorted(set(refs) | {p for p in preds if p is not None})
    order = list(labels) if labels is not None else []
    order += [label for label in seen if label not in order]
    result: dict = {"n": n, "n_unparsed": n_unparsed, "notes": {}}
    if n == 0:
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "ece"):
            result[key] = None
            result["notes"][key] = "no examples"
        result.update(per_class_f1={}, n_confidence=0,
                      confusion_matrix={"labels": order, "predicted_labels": order, "counts": []})
        return result

    index = {label: i for i, label in enumerate(order)}
    columns = order + ([UNPARSED_LABEL] if n_unparsed else [])
    counts = np.zeros((len(order), len(columns)), dtype=np.int64)
    for p, r in zip(preds, refs):
        counts[index[r], index[p] if p is not None else len(order)] += 1
    correct = np.array([p == r for p, r in zip(preds, refs)])
    tp = np.diag(counts[:, : len(order)]).astype(np.float64)
    support = counts.sum(axis=1).astype(np.float64)  # true examples of each class
    predicted = counts[:, : len(order)].sum(axis=0).astype(np.float64)  # parsed predictions of each class

    per_class_f1: dict[str, float] = {}
    for i, label in enumerate(order):
        if support[i] + predicted[i] == 0:
            continue  # a listed label that never occurs has no defined F1 and does not enter the macro average
        per_class_f1[label] = float(2 * tp[i] / (support[i] + predicted[i]))
    present = support > 0
    result.update(
        accuracy=float(correct.mean()),
        balanced_accuracy=float(np.mean(tp[present] / support[present])),
        macro_f1=float(np.mean(list(per_class_f1.values()))),
        per_class_f1=per_class_f1,
        confusion_matrix={"labels": order, "predicted_labels": columns, "counts": counts.tolist()},
    )
    if int(present.sum()) == 1:
        result["notes"]["balanced_accuracy"] = "only one class occurs in the references"

    if confidences is None:
        result.update(ece=None, n_confidence=0)
        result["notes"]["ece"] = "no confidences reported"
    else:
        if len(confidences) != n:
            raise ValueError(f"confidences and references differ in length ({len(confidences)} vs {n})")
        conf = [_as_float(c) for c in confidences]
        keep = [i for i, c in enumerate(conf) if c is not None]
        result["n_confidence"] = len(keep)
        result["ece"] = expected_calibration_error(correct[keep], [conf[i] for i in keep], n_bins) if keep else None
        if not keep:
            result["notes"]["ece"] = "no confidences reported"
    return result


def regression_metrics(predictions: Sequence[float | None], references: Sequence[float]) -> dict:
    """MAE, RMSE, Pearson r and Bland–Altman agreement of numeric answers.

    Args:
        predictions (`list[float | None]`): predicted values; `None` (or NaN) for an answer that did not parse.
        references (`list[float]`): true values.

    Returns:
        `dict` with `n`, `n_parsed`, `n_unparsed`, `mae`, `rmse`, `pearson_r`, `bias` (mean of predicted minus
        true), `loa_lower` / `loa_upper` (Bland–Altman 95% limits of agreement, bias ∓ 1.96 standard deviations of
        the differences, ddof 1), `sd_diff`, and `notes`; all computed on the parsed pairs.
    """
    if len(predictions) != len(references):
        raise ValueError(f"predictions and references differ in length ({len(predictions)} vs {len(references)})")
    refs = [_as_float(r) for r in references]
    if any(r is None for r in refs):
        raise ValueError("references must be finite numbers")
    preds = [_as_float(p) for p in predictions]
    keep = [i for i, p in enumerate(preds) if p is not None]
    y_pred = np.array([preds[i] for i in keep], dtype=np.float64)
    y_true = np.array([refs[i] for i in keep], dtype=np.float64)
    result: dict = {"n": len(refs), "n_parsed": len(keep), "n_unparsed": len(refs) - len(keep), "notes": {}}
    keys = ("mae", "rmse", "pearson_r", "bias", "sd_diff", "loa_lower", "loa_upper")
    if not keep:
        for key in keys:
            result[key] = None
            result["notes"][key] = "no parsed answers" if refs else "no examples"
        return result

    diff = y_pred - y_true
    result.update(mae=float(np.abs(diff).mean()), rmse=float(np.sqrt((diff**2).mean())), bias=float(diff.mean()))
    if diff.size < 2:
        for key in ("sd_diff", "loa_lower", "loa_upper", "pearson_r"):
            result[key] = None
            result["notes"][key] = "needs at least two parsed answers"
        return result
    sd = float(diff.std(ddof=1))
    result.update(sd_diff=sd, loa_lower=result["bias"] - 1.96 * sd, loa_upper=result["bias"] + 1.96 * sd)
    # Pearson r is undefined when either side has no spread; report why instead of a NaN
    if np.ptp(y_pred) == 0:
        result["pearson_r"] = None
        result["notes"]["pearson_r"] = "predictions are constant"
    elif np.ptp(y_true) == 0:
        result["pearson_r"] = None
        result["notes"]["pearson_r"] = "references are constant"
    else:
        a, b = y_pred - y_pred.mean(), y_true - y_true.mean()
        result["pearson_r"] = float(np.clip((a @ b) / math.sqrt((a @ a) * (b @ b)), -1.0, 1.0))
    return result


def _tokens(text: str) -> list[str]:
    cleaned = "".join(ch.lower() if ch.isalnum() or ch in ".-" else " " for ch in text)
    return [t.strip(".") for t in cleaned.split() if t.strip(".")]


def _lcs_length(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def text_overlap_metrics(predictions: Sequence[str | None], references: Sequence[str]) -> dict:
    """Word-overlap scores of free-text answers (the `summary` task): mean token F1 (SQuAD style, bag of words),
    mean ROUGE-L F1 (longest common word subsequence) and exact match, on lower-cased alphanumeric words.
    An empty or missing answer scores 0 and is counted in `n_unparsed`."""
    if len(predictions) != len(references):
        raise ValueError(f"predictions and references differ in length ({len(predictions)} vs {len(references)})")
    token_f1, rouge_l, exact = [], [], []
    n_unparsed = 0
    for pred, ref in zip(predictions, references):
        p, r = _tokens(pred or ""), _tokens(ref)
        if not p:
            n_unparsed += 1
        common = sum(min(p.count(t), r.count(t)) for t in set(p))
        token_f1.append(2 * common / (len(p) + len(r)) if p and r else float(p == r))
        lcs = _lcs_length(p, r)
        rouge_l.append(2 * lcs / (len(p) + len(r)) if p and r else float(p == r))
        exact.append(float(p == r and bool(p)))
    result: dict = {"n": len(references), "n_unparsed": n_unparsed, "notes": {}}
    if not references:
        for key in ("token_f1", "rouge_l", "exact_match"):
            result[key] = None
            result["notes"][key] = "no examples"
        return result
    result.update(
        token_f1=float(np.mean(token_f1)), rouge_l=float(np.mean(rouge_l)), exact_match=float(np.mean(exact))
    )
    return result
