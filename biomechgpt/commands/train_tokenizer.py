"""`biomechgpt train-tokenizer --cohort DIR --out DIR`: train the MotionTokenizer VQ-VAE on a cohort."""

from __future__ import annotations

import argparse

__all__ = ["register", "run", "format_metrics"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-tokenizer",
        help="train the MotionTokenizer (motion -> discrete codes) on a cohort's training split",
        description="Train the MotionTokenizer VQ-VAE on random windows of the cohort's training trials. "
        "Checkpoints go to OUT/checkpoints/ and an interrupted run resumes from the newest one; the finished "
        "tokenizer (config.json, model.safetensors, preprocessor_config.json, metrics.json) is written to OUT.",
    )
    parser.add_argument("--cohort", required=True, metavar="DIR", help="cohort folder from `biomechgpt simulate`")
    parser.add_argument("--out", required=True, metavar="DIR", help="tokenizer folder to write")
    parser.add_argument("--steps", type=int, default=None, metavar="N", help="training steps (default 3000)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="B", help="windows per step (default 32)")
    parser.add_argument("--codebook-size", type=int, default=None, metavar="K", help="motion codes (default 512)")
    parser.add_argument("--hidden-size", type=int, default=None, metavar="H", help="conv channels (default 128)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (default: torch's choice; 1 is faster on a busy shared machine)")
    parser.add_argument("--real-motion", default=None, metavar="DIR",
                        help="folder of real recordings (subfolders included) to score the tokenizer on, beside the "
                        "simulated validation trials (default: $BIOMECHGPT_REFERENCE_MOTION, else "
                        "../shared/reference_motion/ beside a checkout, when it exists)")
    parser.add_argument("--no-real-motion", action="store_true", help="do not score the tokenizer on real recordings")
    parser.add_argument("--calibrate-only", action="store_true",
                        help="do not train: give the trained tokenizer (or model folder) OUT the out-of-distribution "
                        "limits from the cohort's validation trials and score it on the real recordings (for "
                        "tokenizers trained before these existed)")
    parser.add_argument("--no-resume", action="store_true", help="start over instead of resuming a checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from biomechgpt.errors import UsageError
    from biomechgpt.training.motion_tokenizer import MotionTokenizerTrainingArguments, train_motion_tokenizer

    for name in ("steps", "batch_size", "codebook_size", "hidden_size", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.real_motion is not None and args.no_real_motion:
        raise UsageError("--real-motion and --no-real-motion: give one or the other")
    real_motion_dir = None
    if args.real_motion is not None:
        real_motion_dir = Path(args.real_motion)
        if not real_motion_dir.is_dir():
            raise UsageError(f"--real-motion {real_motion_dir}: folder not found")
    elif not args.no_real_motion:
        from biomechgpt.evaluation.evaluate import default_reference_dir

        found = default_reference_dir()
        real_motion_dir = found if found is not None and found.is_dir() else None
    if args.calibrate_only:
        from biomechgpt.training.motion_tokenizer import calibrate_motion_tokenizer

        limits = calibrate_motion_tokenizer(args.out, args.cohort, seed=args.seed, real_motion_dir=real_motion_dir)
        print("out-of-distribution limits (99th percentile of the validation trials' reconstruction error): "
              + ", ".join(f"{g} {v:.2f} deg" for g, v in limits.items()))
        if real_motion_dir is not None:
            import json

            folder = Path(args.out)
            folder = folder / "motion_tokenizer" if (folder / "motion_tokenizer" / "config.json").is_file() else folder
            print(_table(_real_rows(json.loads((folder / "metrics.json").read_text()))))
        return 0
    config = {k: getattr(args, k) for k in ("codebook_size", "hidden_size") if getattr(args, k) is not None}
    training_args = MotionTokenizerTrainingArguments()
    if args.batch_size is not None:
        training_args = replace(training_args, batch_size=args.batch_size)
    if args.threads is not None:
        training_args = replace(training_args, num_threads=args.threads)
    out = train_motion_tokenizer(
        args.cohort,
        args.out,
        config=config or None,
        steps=args.steps,
        seed=args.seed,
        resume=not args.no_resume,
        args=training_args,
        progress=not args.quiet,
        real_motion_dir=real_motion_dir,
    )
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    print(format_metrics(metrics))
    print(f"tokenizer saved to {out}")
    return 0


def format_metrics(metrics: dict) -> str:
    """A short table of the training and validation numbers in `metrics.json`."""
    training = metrics.get("training", {})
    rows = [
        ("steps", f"{training.get('completed_steps')}"),
        ("training time", f"{training.get('seconds_this_run', float('nan')):.1f} s this run"),
        ("final loss", f"{training.get('final', {}).get('loss', float('nan')):.4f}"),
    ]
    val = metrics.get("validation")
    if val:
        rows += [
            ("validation trials", f"{val['n_trials']}"),
            ("joint-angle error", f"{val['joint_angle_mae_deg']:.2f} deg (mean absolute)"),
            ("pelvis velocity error", _fmt(val.get("pelvis_velocity_mae_m_s"), "m/s per frame")),
            ("  one-second means", _fmt(val.get("pelvis_velocity_1s_mae_m_s"), "m/s")),
            ("codebook perplexity", f"{val['codebook_perplexity']:.1f}"),
            ("codebook usage", f"{100 * val['codebook_usage']:.1f} % of codes"),
        ]
        rows += _group_rows("  ", val)
    return _table(rows + _real_rows(metrics))


def _real_rows(metrics: dict) -> list[tuple[str, str]]:
    real = metrics.get("real")
    if not real:
        return []
    rows = [("real recordings", f"{real['n_trials']} in {real.get('folder', '?')}"),
            ("joint-angle error", f"{real['joint_angle_mae_deg']:.2f} deg (mean absolute)")]
    return rows + _group_rows("  ", real)


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _group_rows(indent: str, scores: dict) -> list[tuple[str, str]]:
    words = {"pelvis_legs": "pelvis and legs", "arms": "arms", "lumbar": "lumbar"}
    groups = scores.get("joint_angle_mae_deg_per_group") or {}
    return [(f"{indent}{words[g]}", f"{groups[g]:.2f} deg") for g in words if g in groups]


def _fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.3f} {unit}"
