"""`biomechgpt run`: the whole pipeline on the embedded default."""

from __future__ import annotations

import argparse

from biomechgpt.commands import positive_int

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="simulate, train the tokenizer, build the QA corpus, fine-tune and evaluate (the main job)",
        description="Runs every stage on the embedded default into runs/<name>/, with timings.json and metrics.json. "
        "Running it again on an existing run folder continues the run: finished stages (run.json) are skipped, a "
        "stage that was cut off (a kill, a crash, Ctrl-C) starts over or resumes from its checkpoints.",
    )
    parser.add_argument("--out", default="runs", help="parent folder of run folders (default: runs)")
    parser.add_argument("--name", default=None,
                        help="run folder name (default: 'default', or 'full' / 'quick' with --full / --quick)")
    recipe = parser.add_mutually_exclusive_group()
    recipe.add_argument("--full", action="store_true",
                        help="every stage at its own, longer default (MotionTokenizer 3,000 steps, 4 caption epochs, "
                        "one QA epoch) on the smaller cohort of 500: better free text from the language model alone "
                        "and closer reconstructions, weaker closed-set answers; about 37 min on 2 CPU cores against "
                        "the default's 15 (README: 'Results of the default run')")
    recipe.add_argument("--quick", action="store_true", help="small cohort, short training: a smoke test")
    parser.add_argument("--seed", type=int, default=0, help="seed for every stage (default: 0)")
    parser.add_argument("--participants", type=positive_int, default=None, metavar="N",
                        help="simulated cohort size instead of the recipe's (training lengths stay in epochs, so more "
                        "people train longer)")
    parser.add_argument("--held-out", type=positive_int, default=None, metavar="N",
                        help="participants in each of the validation and test splits instead of the recipe's")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over: empty an existing run folder first (default: continue it)")
    parser.add_argument("--stages", default=None, help="comma-separated subset of stages to run")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from biomechgpt.commands import hide_weight_loading_bars
    from biomechgpt.pipeline import run_pipeline

    hide_weight_loading_bars()

    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    recipe = "quick" if args.quick else "full" if args.full else "default"
    name = args.name or recipe
    run_pipeline(args.out, name, recipe=recipe, seed=args.seed, overwrite=args.overwrite, stages=stages,
                 participants=args.participants, held_out=args.held_out)
    return 0
