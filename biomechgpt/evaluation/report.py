"""`report.md` and its figures from a `metrics.json` payload and the per-question predictions.

Figures follow the paper's: confusion matrices for the closed-set tasks (BiomechGPT next to the baseline), in
percentages of each true class, and predicted-versus-true scatter plots for the numeric ones. Rendered with
matplotlib's Agg backend (no display).

Written for a clinical reader: tasks, metrics and labels appear in words (`TASK_NAMES`, `METRIC_NAMES`), and every
abbreviation is defined once in a glossary before the tables (`GLOSSARY`); `metrics.json` keeps the machine keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biomechgpt.dataset_builder.tasks import NUMERIC_TASKS, TASKS
from biomechgpt.metrics import HEADLINE_METRIC, METRICS_BY_TASK

__all__ = [
    "write_report",
    "render_report",
    "CONFUSION_TASKS",
    "SCATTER_TASKS",
    "TASK_NAMES",
    "METRIC_NAMES",
    "GLOSSARY",
    "glossary_lines",
    "task_name",
    "metric_name",
    "label_text",
    "row_percentages",
]

CONFUSION_TASKS: tuple[str, ...] = ("activity", "impairment", "diagnosis", "assistive_device", "fall_history")
SCATTER_TASKS: tuple[str, ...] = NUMERIC_TASKS
_UNITS = {name: TASKS[name].unit for name in NUMERIC_TASKS}

# How the report and the model card name each task (also the model-index task names on the Hub): the registry's.
TASK_NAMES: dict[str, str] = {name: task.title for name, task in TASKS.items()}
# How tables name the metrics of `metrics.json` (whose keys stay as they are).
METRIC_NAMES: dict[str, str] = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro-F1",
    "ece": "ECE",
    "mae": "MAE",
    "rmse": "RMSE",
    "pearson_r": "Pearson r",
    "bias": "bias",
    "loa_lower": "lower limit of agreement",
    "loa_upper": "upper limit of agreement",
    "token_f1": "word-overlap F1",
}
# Every term or abbreviation the report and the card use, defined once for a reader who is not an ML engineer.
GLOSSARY: dict[str, str] = {
    "BiomechGPT": "the language model evaluated here; its answers in words are read back (parsed) into a label or a "
                  "number and scored against the simulator's truth.",
    "baseline": "a conventional machine-learning model without a language model, trained for each task on the same "
                "training trials; two kinds (gbt and cnn) are trained and the one that scored better on the "
                "validation participants (never the test ones) is the task's baseline.",
    "gbt": "gradient-boosted trees (many small decision trees added together) on standard gait features: cadence, "
           "walking speed, step-time and range-of-motion asymmetry, joint ranges of motion.",
    "cnn": "a small 1-D convolutional neural network that reads the joint angles over time (with pelvis height and "
           "speed).",
    "n": "number of test questions scored (one per test trial for most tasks).",
    "unparsed": "answers that could not be read as any label or number; counted as wrong for closed-set tasks and "
                "left out of the numeric metrics.",
    "accuracy": "share of answers that are right (0 to 1).",
    "balanced accuracy": "share right within each true class, averaged over the classes, so a rare class counts as "
                         "much as a common one.",
    "macro-F1": "for each class, the F1 score (the balance of precision, how many answers of that class are right, "
                "and recall, how many of the class's cases are found), averaged over the classes with equal weight; "
                "0 to 1, 1 is perfect.",
    "ECE": "expected calibration error: how far the stated confidence is from the observed accuracy (answers given "
           "with 80% confidence should be right 80% of the time), averaged over ten confidence bins weighted by their "
           "number of answers; 0 is perfect.",
    "MAE": "mean absolute error: the average size of the error, in the task's unit.",
    "RMSE": "root-mean-square error: like MAE, but large errors weigh more; in the task's unit.",
    "Pearson r": "correlation between predicted and true values, from −1 to 1; 1 means they rise and fall together "
                 "perfectly (a constant offset does not lower it).",
    "bias": "mean of predicted minus true value, in the task's unit (positive: the system overestimates).",
    "95% limits of agreement": "Bland–Altman limits, bias ± 1.96 standard deviations of the differences: about 95% "
                               "of predictions lie within this range of the true value.",
    "word-overlap F1": "for the free-text summary, the share of words the generated and the reference summary have "
                       "in common (F1 of shared words; 1 means the same words).",
}


def task_name(task: str) -> str:
    """The reader's name of `task` ("Affected side" for `impairment_side`)."""
    return TASK_NAMES.get(task, label_text(task))


def metric_name(metric: str) -> str:
    """The reader's name of a `metrics.json` metric key ("macro-F1" for `macro_f1`)."""
    return METRIC_NAMES.get(metric, label_text(metric))


# Labels whose words need more than spaces for underscores.
_LABEL_WORDS = {"parkinsons_disease": "Parkinson's disease", "incomplete_sci": "incomplete spinal cord injury",
                "lower_limb_amputation": "lower-limb amputation", "ankle_foot_orthosis": "ankle-foot orthosis",
                "sit_to_stand": "sit-to-stand", "self_selected": "self-selected"}


def label_text(label: Any) -> str:
    """A class label in words (`timed_up_and_go` -> "timed up and go", `parkinsons_disease` -> "Parkinson's
    disease")."""
    return _LABEL_WORDS.get(str(label), str(label).replace("_", " "))


def glossary_lines(terms: tuple[str, ...] | None = None, *, level: int = 2, title: str = "Terms") -> list[str]:
    """A heading of `level` and one bullet per glossary term (all of `GLOSSARY` when `terms` is None)."""
    terms = tuple(GLOSSARY) if terms is None else terms
    return ["", f"{'#' * level} {title}", ""] + [f"- **{t}**: {GLOSSARY[t]}" for t in terms]


def row_percentages(counts) -> np.ndarray:
    """Each row of a confusion matrix of counts as percentages of its row total (a row of zeros stays zeros)."""
    counts = np.asarray(counts, dtype=float)  # (true classes, predicted classes)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(100 * counts, totals, out=np.zeros_like(counts), where=totals > 0)


def _percent_text(value: float) -> str:
    return "<1%" if 0 < value < 0.5 else f"{value:.0f}%"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _confusion_figure(task: str, entry: dict, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("BiomechGPT", entry.get("biomechgpt", {}))]
    if "confusion_matrix" in entry.get("baseline", {}):
        panels.append((f"baseline ({entry['baseline'].get('family', '')})", entry["baseline"]))
    panels = [(name, m["confusion_matrix"]) for name, m in panels if m.get("confusion_matrix", {}).get("counts")]
    if not panels:
        return False
    size = max(len(cm["predicted_labels"]) for _, cm in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 + 0.55 * size) * np.array([len(panels), 0.9]),
                             squeeze=False)
    for ax, (name, cm) in zip(axes[0], panels):
        counts = np.asarray(cm["counts"], dtype=float)  # (true classes, predicted classes)
        percent = row_percentages(counts)  # so classes of different size compare
        ax.imshow(percent, cmap="Blues", vmin=0, vmax=100)
        for (i, j), c in np.ndenumerate(counts):
            if c:
                ax.text(j, i, _percent_text(percent[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if percent[i, j] > 60 else "black")
        ax.set_xticks(range(len(cm["predicted_labels"])), [label_text(s) for s in cm["predicted_labels"]],
                      rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(cm["labels"])),
                      [f"{label_text(s)} (n={int(n)})" for s, n in zip(cm["labels"], counts.sum(axis=1))], fontsize=7)
        ax.set_xlabel("answered as")
        ax.set_ylabel("true class")
        ax.set_title(name, fontsize=9)
    fig.suptitle(f"{task_name(task)}: % of each true class (rows sum to 100%)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _as_float(values) -> np.ndarray:
    return np.array([float(v) if v is not None and not isinstance(v, str) else np.nan for v in values], dtype=float)


def _scatter_figure(task: str, rows: pd.DataFrame, entry: dict, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = _as_float(rows["reference"])
    series = [("BiomechGPT", _as_float(rows["prediction"]), entry.get("biomechgpt", {}))]
    if "baseline_prediction" in rows:
        series.append((f"baseline ({entry.get('baseline', {}).get('family', '')})",
                       _as_float(rows["baseline_prediction"]), entry.get("baseline", {})))
    if not np.isfinite(truth).any():
        return False
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    for (name, pred, m), marker in zip(series, ("o", "x")):
        ok = np.isfinite(pred)
        if not ok.any():
            ax.plot([], [], ls="none", label=f"{name}: no parsed answers")
        else:
            ax.scatter(truth[ok], pred[ok], s=10, alpha=0.6, marker=marker,
                       label=f"{name}: r={_fmt(m.get('pearson_r'), 2)}, MAE={_fmt(m.get('mae'), 2)}")
    both = np.concatenate([truth[np.isfinite(truth)]] + [p[np.isfinite(p)] for _, p, _ in series])
    lo, hi = float(both.min()), float(both.max())
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
    unit = _UNITS.get(task, "")
    ax.set_xlabel(f"true ({unit})")
    ax.set_ylabel(f"predicted ({unit})")
    ax.set_title(task_name(task))
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def render_report(metrics: dict, figures: dict[str, str] | None = None) -> str:
    """The Markdown text of the report (figures: task -> relative PNG path)."""
    figures = figures or {}
    tasks = metrics.get("tasks", {})
    lines = ["# BiomechGPT evaluation", ""]
    info = metrics.get("info", {})
    if info:
        lines += [f"Model `{info.get('model')}`, QA corpus `{info.get('dataset')}`, split `{info.get('split')}`; "
                  f"baseline trained on the {info.get('baseline_input', 'motion')}. Seed {info.get('seed')}.", ""]
    lines += glossary_lines(level=2, title="How to read this report")[1:] + [""]
    lines += ["## Per task", "",
              "Headline metric: macro-F1 for closed-set tasks (the answer is one of a fixed set of classes), Pearson "
              "r for numeric ones (higher is better for both). The baseline column names the kind chosen for the "
              "task; both kinds are listed. Unparsed answers count as wrong for closed-set tasks; numeric metrics use "
              "the parsed answers.", "",
              "| task | n | metric | BiomechGPT | baseline | baseline: gbt | baseline: cnn | BiomechGPT unparsed |",
              "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for task, entry in tasks.items():
        kind = METRICS_BY_TASK.get(task, "text")
        metric = HEADLINE_METRIC.get(kind, "token_f1")
        ours, base = entry.get("biomechgpt", {}), entry.get("baseline", {})
        families = entry.get("baseline_families", {})
        family = f" ({base['family']})" if base.get("family") else ""
        lines.append(f"| {task_name(task)} | {entry.get('n')} | {metric_name(metric)} | {_fmt(ours.get(metric))} | "
                     f"{_fmt(base.get(metric))}{family} | {_fmt(families.get('gbt', {}).get(metric))} | "
                     f"{_fmt(families.get('cnn', {}).get(metric))} | {ours.get('n_unparsed', 0)} |")

    classification = [t for t in tasks if METRICS_BY_TASK.get(t) == "classification"]
    if classification:
        lines += ["", "### Closed-set tasks", "",
                  "| task | system | accuracy | balanced acc. | macro-F1 | ECE | unparsed |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for task in classification:
            for name, m in _systems(tasks[task]):
                lines.append(f"| {task_name(task)} | {name} | {_fmt(m.get('accuracy'))} | "
                             f"{_fmt(m.get('balanced_accuracy'))} | "
                             f"{_fmt(m.get('macro_f1'))} | {_fmt(m.get('ece'))} | {m.get('n_unparsed', 0)} |")
    numeric = [t for t in tasks if METRICS_BY_TASK.get(t) == "regression"]
    if numeric:
        lines += ["", "### Numeric tasks", "",
                  "| task | system | MAE | RMSE | Pearson r | bias | 95% limits of agreement | unparsed |",
                  "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |"]
        for task in numeric:
            for name, m in _systems(tasks[task]):
                loa = (f"{_fmt(m.get('loa_lower'))} to {_fmt(m.get('loa_upper'))}"
                       if m.get("loa_lower") is not None else "–")
                lines.append(f"| {task_name(task)} | {name} | {_fmt(m.get('mae'))} | "
                             f"{_fmt(m.get('rmse'))} | {_fmt(m.get('pearson_r'))} | {_fmt(m.get('bias'))} | {loa} | "
                             f"{m.get('n_unparsed', 0)} |")
    notes = [(task, name, key, why) for task in tasks for name, m in _systems(tasks[task])
             for key, why in m.get("notes", {}).items()]
    if notes:
        lines += ["", "Undefined metrics: " + "; ".join(f"{task_name(t)} / {n} / {metric_name(k)}: {w}"
                                                       for t, n, k, w in notes) + "."]

    lines += participant_lines(tasks)
    ceiling = tasks.get("fall_history", {}).get("ceiling")
    if ceiling:
        ours = tasks["fall_history"].get("biomechgpt", {}).get("accuracy")
        base = tasks["fall_history"].get("baseline", {}).get("accuracy")
        lines += ["", "### Fall-history ceiling", "",
                  "Fall history is drawn from a probability (age, balance, severity), so it is not fully predictable "
                  "from motion. Predicting the more likely class from the simulator's stored probability is right "
                  "with probability max(p, 1 − p):", "",
                  "| | accuracy |", "| --- | ---: |",
                  f"| ceiling (stored probabilities, per question) | {_fmt(ceiling.get('accuracy'))} |",
                  f"| ceiling (per participant, n={ceiling.get('n_participants')}) | "
                  f"{_fmt(ceiling.get('per_participant'))} |",
                  f"| BiomechGPT | {_fmt(ours)} |", f"| baseline | {_fmt(base)} |"]

    if figures:
        lines += ["", "## Figures", "",
                  "Confusion matrices (closed-set tasks): one row per true class, with its number of test questions "
                  "n; each cell is the percentage of that class's questions answered as the column's class, so each "
                  "row sums to 100% and the diagonal is the share of the class found. Scatter plots (numeric tasks): "
                  "each test question's predicted against true value; the dashed line is perfect agreement.", ""]
        for task, rel in figures.items():
            lines += [f"![{task_name(task)}]({rel})", ""]

    lines += _sim_to_real_lines(metrics.get("sim_to_real", {}))
    lines += wording_lines(metrics.get("wordings", {}))
    lines += experiment_lines(metrics.get("experiments", {}))
    timings = info.get("timings_s")
    if timings:
        lines += ["", "Wall time (s): " + ", ".join(f"{_TIMING_NAMES.get(k, label_text(k.removesuffix('_s')))} {v}"
                                                    for k, v in timings.items()) + "."]
    return "\n".join(lines).rstrip() + "\n"


_TIMING_NAMES = {"biomechgpt_s": "BiomechGPT answers", "baseline_s": "baseline training and answers",
                 "wordings_s": "wordings check", "experiments_s": "experiments", "total_s": "total"}


def participant_lines(tasks: dict, level: int = 3) -> list[str]:
    """A table of the per-participant scores (each system's most frequent per-trial label for the person)."""
    rows = [(task, entry["per_participant"]) for task, entry in tasks.items() if entry.get("per_participant")]
    if not rows:
        return []
    lines = ["", f"{'#' * level} Per participant", "",
             "Participant-level tasks judged once per person: each system's label for a participant is its most "
             "frequent label over that person's test trials (one vote per trial).", "",
             "| task | participants | BiomechGPT macro-F1 | baseline macro-F1 |", "| --- | ---: | ---: | ---: |"]
    for task, entry in rows:
        lines.append(f"| {task_name(task)} | {entry.get('n_participants')} | "
                     f"{_fmt(entry.get('biomechgpt', {}).get('macro_f1'))} | "
                     f"{_fmt(entry.get('baseline', {}).get('macro_f1'))} |")
    return lines


def _systems(entry: dict) -> list[tuple[str, dict]]:
    found = [("BiomechGPT", entry.get("biomechgpt", {}))]
    for family, m in entry.get("baseline_families", {}).items():
        found.append((f"baseline: {family}", m))
    return found


def _sim_to_real_lines(check: dict) -> list[str]:
    lines = ["", "## Sim-to-real check on real recordings", ""]
    if not check:
        return lines + ["Not run."]
    if "skipped" in check:
        return lines + [f"Skipped: {check['skipped']}."]
    lines += ["Real joint-angle recordings (../shared/reference_motion/ and its sub-folders: OpenSim example data "
              "and treadmill walking processed by AddBiomechanics); the model never saw them. Activity and "
              "impairment are checked against each file's documented content, cadence against the period of the "
              "file's knee angles (recordings with at least 3 s of gait). Reported separately from the simulated "
              "test split.", "",
              "| file | task | expected | BiomechGPT | confidence | baseline |",
              "| --- | --- | --- | --- | ---: | --- |"]
    for record in check.get("recordings", []):
        if "error" in record:
            lines.append(f"| {record['file']} | – | – | could not be read: {record['error']} | | |")
            continue
        for task in ("activity", "impairment", "cadence"):
            if task not in record:
                continue
            r = record[task]
            if task == "cadence":
                got = r.get("biomechgpt")
                lines.append(f"| {record['file']} | {task_name(task)} | {_fmt(r['expected'], 1)} | "
                             f"{'unparsed' if got is None and 'biomechgpt_answer' in r else _fmt(got, 1)} | | "
                             f"{_fmt(r.get('baseline'), 1) if 'baseline' in r else '–'} |")
            else:
                got, base = r.get("biomechgpt"), r.get("baseline")
                lines.append(f"| {record['file']} | {task_name(task)} | {label_text(r['expected'])} | "
                             f"{label_text(got) if got else 'unparsed'} | {_fmt(r.get('confidence'), 2)} | "
                             f"{label_text(base) if base is not None else '–'} |")
    errors = sorted({r["biomechgpt_error"] for r in check.get("recordings", []) if "biomechgpt_error" in r})
    if errors:
        lines.append(f"\nBiomechGPT could not read the recordings: {'; '.join(errors)}.")
    lines.append("")
    lines += sim_to_real_summary_lines(check.get("summary", {}))
    return lines


def wording_lines(check: dict, level: int = 2) -> list[str]:
    """The held-out wordings check: per task, the share of trials with one answer for every wording and the score
    with held-out wordings beside the training wording's, for the model asked directly and for `ask` / the chat."""
    lines = ["", f"{'#' * level} Question wordings the model was not trained on", ""]
    if not check:
        return lines + ["Not run."]
    if "skipped" in check:
        return lines + [f"Skipped: {check['skipped']}."]
    ways = [w for w in ("model", "ask") if w in check.get("overall", {})]
    lines += ["Each test trial below was asked every held-out wording of its task's question "
              f"(`{check.get('wordings_file', 'heldout_questions.tsv')}`, written apart from the training templates). "
              "*model*: the wording goes straight to `model.answer`; *ask*: as `biomechgpt ask` and the chat page "
              "do, the wording is routed to a task and the model is asked that task's training question. "
              "*unchanged*: share of trials with the same answer for every wording (numbers within 2%). Score: "
              "accuracy for closed-set tasks, mean absolute error for numbers.", ""]
    header = "| task | trials × wordings | training wording |" + "".join(
        f" {w}: unchanged | {w}: score |" for w in ways)
    lines += [header, "| --- | ---: | ---: |" + " ---: | ---: |" * len(ways)]
    for task, e in check.get("tasks", {}).items():
        row = f"| {task_name(task)} | {e['n_trials']} × {e['wordings']} | {_score_text(e['training_wording'])} |"
        for w in ways:
            row += f" {_fmt(e[w]['unchanged'], 2)} | {_score_text(e[w])} |"
        lines.append(row)
    lines.append("")
    for w in ways:
        o = check["overall"][w]
        change = o.get("accuracy_change")
        lines.append(f"- {w}: {_fmt(o['unchanged'], 3)} of trials unchanged across wordings; closed-set accuracy "
                     f"{'–' if change is None else f'{100 * change:+.1f} points'} against the training wording.")
    return lines


def _score_text(score: dict) -> str:
    if "accuracy" in score:
        return _fmt(score["accuracy"], 3)
    text = f"MAE {_fmt(score.get('mae'), 3)}"
    return text + (f" ({_fmt(score['unparsed'], 2)} unparsed)" if score.get("unparsed") else "")


def sim_to_real_summary_lines(summary: dict) -> list[str]:
    """One bullet per checked task of the sim-to-real summary (shared by the report and the model card)."""
    lines = []
    for task, s in summary.items():
        if task == "cadence":
            lines.append(f"- Cadence: BiomechGPT within {_fmt(s['tolerance'], 0)} steps/min of the knee-angle period "
                         f"for {_fmt(s.get('biomechgpt_within_tolerance'), 2)} of recordings (mean absolute error "
                         f"{_fmt(s.get('biomechgpt_mae'), 1)} steps/min), baseline "
                         f"{_fmt(s.get('baseline_within_tolerance'), 2)} (error {_fmt(s.get('baseline_mae'), 1)}) "
                         f"(n = {s['n']}).")
        else:
            lines.append(f"- {task_name(task)}: BiomechGPT {_fmt(s['biomechgpt_accuracy'], 2)} correct, baseline "
                         f"{_fmt(s.get('baseline_accuracy'), 2)} (n = {s['n']}).")
    return lines


_COLUMN_NAMES = {"train_s": "training time (s)"}


def experiment_lines(experiments: dict, level: int = 2) -> list[str]:
    """Markdown of the experiments' tables under a heading of `level` (each experiment one level below), with
    each experiment's summary; shared by the report and the model card."""
    lines: list[str] = []
    if not experiments:
        return lines
    lines += ["", "#" * level + " Experiments", ""]
    for name, result in experiments.items():
        lines += ["#" * (level + 1) + f" {name}", "", result.get("description", ""), ""]
        rows = result.get("rows", [])
        if not rows:
            lines.append(result.get("note", "No results."))
            continue
        columns = [c for c in rows[0] if c != "metrics"]
        metric_tasks = list(rows[0].get("metrics", {}))
        lines.append("| " + " | ".join([_COLUMN_NAMES.get(c, label_text(c)) for c in columns]
                                       + [task_name(t) for t in metric_tasks]) + " |")
        lines.append("| " + " | ".join(["---"] * (len(columns) + len(metric_tasks))) + " |")
        for row in rows:
            cells = [_fmt(row[c]) for c in columns] + [_fmt(row.get("metrics", {}).get(t)) for t in metric_tasks]
            lines.append("| " + " | ".join(cells) + " |")
        if result.get("note"):
            lines += ["", result["note"]]
        if result.get("summary"):
            lines += ["", f"In short: {result['summary']}"]
        lines.append("")
    return lines


def write_report(metrics: dict, predictions: pd.DataFrame | None, out_dir: str | Path) -> Path:
    """Writes `out_dir/report.md` and `out_dir/figures/*.png`; returns the report's path."""
    out = Path(out_dir)
    figure_dir = out / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str] = {}
    tasks = metrics.get("tasks", {})
    for task in CONFUSION_TASKS:
        if task in tasks and _confusion_figure(task, tasks[task], figure_dir / f"confusion_{task}.png"):
            figures[task] = f"figures/confusion_{task}.png"
    if predictions is not None and len(predictions):
        for task in SCATTER_TASKS:
            rows = predictions[predictions.task == task]
            if task in tasks and len(rows) and _scatter_figure(task, rows, tasks[task],
                                                               figure_dir / f"scatter_{task}.png"):
                figures[task] = f"figures/scatter_{task}.png"
    path = out / "report.md"
    path.write_text(render_report(metrics, figures))
    return path
