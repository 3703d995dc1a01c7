"""`biomechgpt evaluate`: score a model and the non-LLM baseline on the QA corpus's test split."""

from __future__ import annotations

import argparse
from pathlib import Path

from biomechgpt.commands import non_negative_int, positive_int

__all__ = ["register", "run"]


def _experiment_list(text: str) -> list[str]:
    from biomechgpt.evaluation.experiments import EXPERIMENTS

    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in EXPERIMENTS]
    if bad:
        known = ", ".join(EXPERIMENTS)
        raise argparse.ArgumentTypeError(f"unknown experiment(s) {', '.join(bad)}; choose from {known}")
    return names


def _task_list(text: str) -> tuple[str, ...]:
    from biomechgpt.metrics import METRICS_BY_TASK

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in METRICS_BY_TASK]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown task(s) {', '.join(bad) or '(none given)'}; choose from "
                                         f"{', '.join(METRICS_BY_TASK)}")
    return names


def _folder(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text}: not a folder")
    return text


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model and the non-LLM baseline on every task of the test split",
        description="Scores BiomechGPT and a non-LLM baseline (gradient-boosted trees on gait features, temporal "
        "CNN) on every task of the QA corpus's test split; writes metrics.json, predictions.parquet, report.md "
        "with figures, and model_card.md into --out.",
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="model folder (biomechgpt train --out)")
    parser.add_argument("--dataset", required=True, metavar="DIR", help="QA corpus folder (biomechgpt build-dataset)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the results go")
    parser.add_argument("--cohort", metavar="DIR", help="cohort folder: the baseline's motion and the fall-history "
                        "ceiling (without it the baseline uses motion decoded from the codes)")
    parser.add_argument("--experiments", type=_experiment_list, default=[], metavar="LIST",
                        help="comma-separated experiments to run as well: transfer,size")
    parser.add_argument("--quick", action="store_true", help="small baseline and experiment budgets (smoke tests)")
    parser.add_argument("--experiment-steps", type=positive_int, metavar="N",
                        help="optimiser steps of every experiment model (default 1000; the default run trains 2044)")
    parser.add_argument("--transfer-tasks", type=_task_list, metavar="LIST",
                        help="tasks of the transfer experiment (default: activity,impairment,diagnosis,cadence,"
                        "walking_speed)")
    parser.add_argument("--max-rows-per-task", type=positive_int, metavar="N",
                        help="score only the first N test questions of each task")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="questions per forward pass (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the baseline and experiments (default 0)")
    parser.add_argument("--reference-motion", type=_folder, metavar="DIR",
                        help="folder of real recordings for the sim-to-real check (default: "
                        "$BIOMECHGPT_REFERENCE_MOTION, else ../shared/reference_motion beside the repository "
                        "checkout)")
    parser.add_argument("--no-sim-to-real", action="store_true",
                        help="skip the sim-to-real check (metrics.json records that it was skipped)")
    parser.add_argument("--wording-trials", type=non_negative_int, metavar="N",
                        help="test trials per task asked every held-out wording of their question (default 20, 5 "
                        "with --quick; 0 skips the wording check)")
    parser.add_argument("--no-model-card", action="store_true",
                        help="do not write model_card.md nor update the model folder's README.md")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from biomechgpt.commands import hide_weight_loading_bars
    from biomechgpt.evaluation import evaluate_model
    from biomechgpt.pipeline import format_results_table

    hide_weight_loading_bars()

    from biomechgpt.evaluation.experiments import ExperimentSettings

    options = None
    if args.experiment_steps is not None or args.transfer_tasks is not None:
        settings = ExperimentSettings.quick(args.seed) if args.quick else ExperimentSettings(seed=args.seed)
        if args.experiment_steps is not None:
            settings.max_steps = args.experiment_steps
        if args.transfer_tasks is not None:
            settings.transfer_tasks = args.transfer_tasks
        options = {"settings": settings}
    metrics = evaluate_model(
        args.model, args.dataset, args.out, cohort_dir=args.cohort, experiments=args.experiments, quick=args.quick,
        seed=args.seed, max_rows_per_task=args.max_rows_per_task, batch_size=args.batch_size,
        experiment_options=options, write_card=not args.no_model_card, progress=not args.no_progress,
        reference_dir=args.reference_motion, sim_to_real=not args.no_sim_to_real, wording_trials=args.wording_trials,
    )
    print(format_results_table(metrics))
    print(f"\nWrote {args.out}/metrics.json, report.md, predictions.parquet and figures/")
    return 0
