"""The paper's experiments, re-run on the simulated corpus with small budgets.

- `transfer`: one model trained on all tasks versus one model per task, each with the same training budget (the
  same number of optimiser steps of the same batch size, so a per-task model sees its own task more often). Does
  learning the other tasks help or hurt a task?
- `size`: at least three sizes of the embedded default family (`tiny-s`, `tiny`, `tiny-l`) trained on all tasks with
  the same budget.

Every model is scored on the same test rows with the task's headline metric (macro-F1 or Pearson r). Budgets are
small on purpose (minutes on 2 CPU cores; `quick=True` for a smoke run): the tables compare settings against each
other, not against the main model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from biomechgpt.errors import UsageError
from biomechgpt.evaluation.common import answer_rows, corpus_parser, load_corpus, load_model, predictions_frame
from biomechgpt.metrics import HEADLINE_METRIC, METRICS_BY_TASK, compute_task_metrics

__all__ = ["EXPERIMENTS", "ExperimentSettings", "run_experiments", "transfer_experiment", "size_experiment"]

EXPERIMENTS: tuple[str, ...] = ("transfer", "size")


@dataclass
class ExperimentSettings:
    """Budgets of the experiments.

    Args:
        max_steps (`int`, defaults to 1000): optimiser steps of every trained model (the default run trains ~2000;
            at 150 steps, the earlier default, no model had started to read the motion and every table compared
            chance levels).
        batch_size (`int`, defaults to 8): conversations per step.
        transfer_tasks (`tuple[str, ...]`): tasks compared in the transfer experiment (one per-task model each).
        sizes (`tuple[str, ...]`, defaults to `("tiny-s", "tiny", "tiny-l")`): model sizes of the size experiment.
        eval_rows_per_task (`int`, defaults to 150): test questions scored per task.
        seed (`int`, defaults to 0).
    """

    max_steps: int = 1000
    batch_size: int = 8
    transfer_tasks: tuple[str, ...] = ("activity", "impairment", "diagnosis", "cadence", "walking_speed")
    sizes: tuple[str, ...] = ("tiny-s", "tiny", "tiny-l")
    eval_rows_per_task: int = 150
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # more `train_model` keyword arguments

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.batch_size < 1 or self.eval_rows_per_task < 1:
            raise ValueError("max_steps, batch_size and eval_rows_per_task must be positive")
        if len(self.sizes) < 1:
            raise ValueError("sizes must name at least one model size")
        unknown = set(self.transfer_tasks) - set(METRICS_BY_TASK)
        if unknown:
            raise ValueError(f"unknown transfer task(s): {', '.join(sorted(unknown))}")

    @classmethod
    def quick(cls, seed: int = 0) -> ExperimentSettings:
        return cls(max_steps=30, transfer_tasks=("activity", "cadence"), eval_rows_per_task=40, seed=seed)


def _default_train(dataset_dir: Path, base_model: str, out_dir: Path, *, motion_tokenizer: Any, seed: int,
                   max_steps: int, batch_size: int, progress: bool, **extra: Any) -> Path:
    from biomechgpt.training.train_lm import train_model

    return train_model(dataset_dir, base_model, out_dir, motion_tokenizer=motion_tokenizer, seed=seed,
                       max_steps=max_steps, batch_size=batch_size, progress=progress, resume=False, **extra)


def _find_motion_tokenizer(dataset_dir: Path, model_dir: Path | None) -> Path | None:
    for folder in (dataset_dir / "motion_tokenizer", dataset_dir.parent / "tokenizer",
                   *([model_dir / "motion_tokenizer"] if model_dir is not None else [])):
        if (folder / "config.json").is_file():
            return folder
    return None


def _subset_corpus(corpus: pd.DataFrame, tasks: Sequence[str], folder: Path) -> Path:
    """A corpus folder with only the training rows of `tasks` (for the per-task models)."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    rows = corpus[(corpus.split == "train") & corpus.task.isin(tasks)]
    rows.to_parquet(data / "train-00000-of-00001.parquet", index=False)
    return folder


class _Runner:
    def __init__(self, corpus, dataset_dir, out_dir, settings, train_fn, load_fn, motion_tokenizer, parser, progress,
                 cohort_dir=None):
        self.cohort_dir = cohort_dir
        self._motion_for = None
        self.corpus, self.dataset_dir, self.out_dir = corpus, Path(dataset_dir), Path(out_dir)
        self.settings, self.train_fn, self.load_fn = settings, train_fn, load_fn
        self.motion_tokenizer, self.parser, self.progress = motion_tokenizer, parser, progress
        test = corpus[corpus.split == "test"].sort_values("id", kind="stable")
        self.test = test.groupby("task", sort=False).head(settings.eval_rows_per_task).reset_index(drop=True)
        self._trained: dict[tuple[str, str], tuple[Path, float]] = {}

    def train(self, name: str, dataset_dir: Path, base_model: str) -> tuple[Path, float]:
        """Train (or reuse: the size experiment's `tiny` is the transfer experiment's all-task model, same seed and
        budget) and return the model folder and its training seconds."""
        key = (str(dataset_dir), base_model)
        if key not in self._trained:
            start = time.perf_counter()
            folder = self.train_fn(dataset_dir, base_model, self.out_dir / name,
                                   motion_tokenizer=self.motion_tokenizer, seed=self.settings.seed,
                                   max_steps=self.settings.max_steps, batch_size=self.settings.batch_size,
                                   progress=self.progress, **self.settings.extra,
                                   **({"cohort_dir": self.cohort_dir} if self.cohort_dir is not None else {}))
            self._trained[key] = (Path(folder), time.perf_counter() - start)
        return self._trained[key]

    def score(self, model_dir: Path, tasks: Sequence[str]) -> tuple[dict[str, float | None], int | None]:
        model = self.load_fn(model_dir)
        rows = self.test[self.test.task.isin(tasks)].reset_index(drop=True)
        if self._motion_for is None and self.cohort_dir is not None:
            from biomechgpt.cohort import load_cohort

            self._motion_for = load_cohort(self.cohort_dir).motion
        answers = answer_rows(model, rows, progress=False, motion_for=self._motion_for)
        predictions = predictions_frame(rows, answers, self.parser)
        scores = {}
        for task in tasks:
            part = predictions[predictions.task == task]
            if part.empty:
                continue
            kind = METRICS_BY_TASK[task]
            metrics = compute_task_metrics(task, list(part.prediction), list(part.reference), list(part.confidence))
            scores[task] = metrics.get(HEADLINE_METRIC[kind])
        parameters = sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else None
        return scores, parameters


def transfer_experiment(runner: _Runner) -> dict:
    s = runner.settings
    tasks = [t for t in s.transfer_tasks if t in set(runner.test.task)]
    all_tasks = sorted(set(runner.corpus[runner.corpus.split == "train"].task))
    joint_dir, joint_s = runner.train("transfer_all_tasks", runner.dataset_dir, "tiny")
    joint_scores, _ = runner.score(joint_dir, tasks)
    single_scores, single_s = {}, 0.0
    for task in tasks:
        corpus_dir = _subset_corpus(runner.corpus, [task], runner.out_dir / f"corpus_{task}")
        model_dir, seconds = runner.train(f"transfer_only_{task}", corpus_dir, "tiny")
        single_s += seconds
        single_scores.update(runner.score(model_dir, [task])[0])
    better = [t for t in tasks if None not in (joint_scores.get(t), single_scores.get(t))
              and joint_scores[t] > single_scores[t]]
    return {
        "description": (f"One `tiny` model trained on all {len(all_tasks)} tasks versus one `tiny` model per task; "
                        f"every model gets the same budget ({s.max_steps} steps of {s.batch_size} conversations). "
                        "Headline metric per task (macro-F1 or Pearson r) on the same test questions."),
        "budget": {"max_steps": s.max_steps, "batch_size": s.batch_size},
        "eval_rows_per_task": s.eval_rows_per_task,
        "rows": [
            {"model": "one model, all tasks", "train_s": round(joint_s, 1), "metrics": joint_scores},
            {"model": "one model per task", "train_s": round(single_s, 1), "metrics": single_scores},
        ],
        "summary": (f"the all-task model beat the per-task models on {len(better)} of {len(tasks)} tasks "
                    f"({', '.join(better) or 'none'}) at {s.max_steps} steps each."),
    }


def size_experiment(runner: _Runner) -> dict:
    s = runner.settings
    tasks = [t for t in METRICS_BY_TASK if t in set(runner.test.task) and METRICS_BY_TASK[t] != "text"]
    rows = []
    for size in s.sizes:
        model_dir, seconds = runner.train(f"size_{size}", runner.dataset_dir, size)
        scores, parameters = runner.score(model_dir, tasks)
        rows.append({"size": size, "parameters": parameters, "train_s": round(seconds, 1), "metrics": scores})
    means = {r["size"]: _mean([v for v in r["metrics"].values() if v is not None]) for r in rows}
    return {
        "description": (f"Sizes of the embedded default family, each trained on all tasks with the same budget "
                        f"({s.max_steps} steps of {s.batch_size} conversations)."),
        "budget": {"max_steps": s.max_steps, "batch_size": s.batch_size},
        "eval_rows_per_task": s.eval_rows_per_task,
        "rows": rows,
        "summary": "mean headline metric " + ", ".join(f"{k} {v:.3f}" for k, v in means.items() if v is not None)
                   + f" at {s.max_steps} steps.",
    }


def _same_as_main_model(model_dir: Path, settings: ExperimentSettings) -> tuple[Path, float] | None:
    """`(model_dir, its training seconds)` when the main model is what the experiments would train as their
    all-task `tiny` model (same base, mode, seed, step count and batch size, no extra arguments), else `None`."""
    try:
        summary = json.loads((model_dir / "training_summary.json").read_text())
        arguments = summary["arguments"]
        same = (summary["base_model"] == "tiny" and summary["mode"] == "full" and summary["seed"] == settings.seed
                and summary["steps"] == settings.max_steps and arguments["batch_size"] == settings.batch_size
                and arguments["gradient_accumulation_steps"] == 1 and not settings.extra
                and all(arguments.get(k, "codes" if k == "motion_input" else None) == v
                        for k, v in _default_motion_arguments().items()))
        return (model_dir, float(summary.get("train_runtime_s", 0.0))) if same else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _default_motion_arguments() -> dict:
    """The motion-reading fields of the default training arguments (the experiments train with them)."""
    from dataclasses import fields

    from biomechgpt.training.train_lm import BiomechGPTTrainingArguments

    defaults = BiomechGPTTrainingArguments()
    return {f.name: getattr(defaults, f.name) for f in fields(defaults)
            if f.name.startswith(("motion_", "encoder_", "num_motion", "freeze_"))}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def run_experiments(
    names: Sequence[str],
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    settings: ExperimentSettings | None = None,
    model_dir: str | Path | None = None,
    train_fn: Callable[..., Path] | None = None,
    load_fn: Callable[[Path], Any] | None = None,
    parser: Callable[[str, str], Any] | None = None,
    progress: bool = True,
    cohort_dir: str | Path | None = None,
) -> dict:
    """Runs the named experiments ("transfer", "size") and returns `{name: result table}` for `metrics.json`.

    Args:
        names (`list[str]`): experiments to run, any of `EXPERIMENTS`.
        dataset_dir (`str` or `Path`): the QA corpus folder.
        out_dir (`str` or `Path`): where the experiment models go (one folder each).
        quick (`bool`, defaults to `False`): `ExperimentSettings.quick()` budgets.
        seed (`int`, defaults to 0).
        settings ([`ExperimentSettings`], *optional*): explicit budgets (override `quick`).
        model_dir (`str` or `Path`, *optional*): the main model folder, where the MotionTokenizer is found when it is
            not next to the corpus.
        train_fn, load_fn, parser (*optional*): training, loading and answer-parsing functions; default to
            `biomechgpt.training.train_lm.train_model`, `BiomechGPTForCausalLM.from_pretrained` and the corpus's
            `parse_answer` (tests pass small fakes).
        progress (`bool`, defaults to `True`).
        cohort_dir (`str` or `Path`, *optional*): the cohort, for models that read continuous motion (training on its
            motions and answering about them).
    """
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise UsageError(f"unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    settings = settings or (ExperimentSettings.quick(seed) if quick else ExperimentSettings(seed=seed))
    corpus = load_corpus(dataset_dir)
    motion_tokenizer = _find_motion_tokenizer(Path(dataset_dir), Path(model_dir) if model_dir else None)
    runner = _Runner(corpus, dataset_dir, out_dir, settings, train_fn or _default_train, load_fn or load_model,
                     motion_tokenizer, parser or corpus_parser(), progress, cohort_dir)
    main_model = _same_as_main_model(Path(model_dir), settings) if model_dir else None
    if main_model is not None:  # the all-task `tiny` model at this budget is the model being evaluated
        runner._trained[(str(runner.dataset_dir), "tiny")] = main_model
    results = {}
    for name in names:
        start = time.perf_counter()
        results[name] = (transfer_experiment if name == "transfer" else size_experiment)(runner)
        results[name]["wall_s"] = round(time.perf_counter() - start, 1)
        results[name]["settings"] = {k: (list(v) if isinstance(v, tuple) else v)
                                     for k, v in asdict(settings).items()}
    return results
