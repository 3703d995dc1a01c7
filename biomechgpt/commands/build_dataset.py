"""`biomechgpt build-dataset`: the question–answer corpus from a cohort and a MotionTokenizer."""

from __future__ import annotations

import argparse
import time

__all__ = ["register", "run", "format_report"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-dataset",
        help="build the question–answer corpus (Parquet + dataset card)",
        description="Tokenize every trial of a cohort once with a MotionTokenizer and write question–answer pairs "
        "about it (activity, impairment, diagnosis, device, falls, cadence, speed, stride, TUG / FSST time, summary) "
        "as Parquet shards under OUT/data/ with a dataset card OUT/README.md, loadable with "
        "datasets.load_dataset(OUT). Bad input prints one line and exits with status 2.",
    )
    parser.add_argument("--cohort", required=True, metavar="DIR", help="cohort folder (biomechgpt simulate --out)")
    parser.add_argument("--tokenizer", required=True, metavar="DIR",
                        help="MotionTokenizer folder (biomechgpt train-tokenizer --out)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (must be empty or absent)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every phrasing choice (default 0)")
    parser.add_argument("--questions-per-trial", type=int, default=None, metavar="N",
                        help="questions per trial (default: every task that applies to the trial, once)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from biomechgpt.errors import UsageError
    from biomechgpt.commands import hide_weight_loading_bars
    from biomechgpt.dataset_builder import build_dataset

    hide_weight_loading_bars()

    if args.questions_per_trial is not None and args.questions_per_trial < 1:
        raise UsageError(f"--questions-per-trial must be at least 1, got {args.questions_per_trial}")
    start = time.perf_counter()
    out = build_dataset(args.cohort, args.tokenizer, args.out, seed=args.seed,
                        questions_per_trial=args.questions_per_trial, overwrite=args.overwrite)
    print(format_report(out, time.perf_counter() - start))
    return 0


def format_report(folder, seconds: float) -> str:
    """The closing table: QA pairs per task and split, and where the corpus went."""
    import pandas as pd

    from biomechgpt.dataset_builder import TASKS

    shards = sorted((folder / "data").glob("*.parquet"))
    rows = pd.concat([pd.read_parquet(p, columns=["split", "task"]) for p in shards], ignore_index=True)
    splits = [s for s in ("train", "validation", "test") if s in set(rows.split)]
    counts = rows.groupby(["task", "split"]).size()
    width = max(len(t) for t in TASKS)
    lines = [f"{'task':<{width}}  " + "  ".join(f"{s:>10}" for s in splits) + f"  {'total':>8}"]
    for task in TASKS:
        per = [int(counts.get((task, s), 0)) for s in splits]
        lines.append(f"{task:<{width}}  " + "  ".join(f"{n:>10}" for n in per) + f"  {sum(per):>8}")
    totals = [int((rows.split == s).sum()) for s in splits]
    lines.append(f"{'all':<{width}}  " + "  ".join(f"{n:>10}" for n in totals) + f"  {len(rows):>8}")
    lines.append(f"wrote {len(rows)} QA pairs to {folder} in {seconds:.1f} s")
    return "\n".join(lines)
