"""The motion encoder with linear heads as a neural baseline trained to convergence: learning curve and test scores.

BiomechGPT's stage 1 trains its motion encoder alone on every task's trial-level target (see
`biomechgpt.training.pretrain_encoder`). The same network with its heads is a properly trained neural baseline (per-
channel standardisation, residual dilated convolutions, heading replaced by yaw rate and heading-frame velocities,
task-balanced losses, the epoch chosen on the validation split): this script trains it on a run's corpus and cohort
and prints the validation learning curve (metric per epoch) and the selected epoch's scores on the test split, which
`biomechgpt evaluate` does not score (its baseline is the better of gradient-boosted trees and a small CNN).

    .venv/bin/python bench/bench_encoder_baseline.py --run runs/default [--epochs 12] [--threads 2] \
        [--no-statistics-token] [--descriptors]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/default", help="a biomechgpt run folder (cohort/ and dataset/)")
    parser.add_argument("--epochs", type=float, default=12.0, help="passes over the training trials (default: 12)")
    parser.add_argument("--hidden", type=int, default=64, help="encoder channels (default: 64)")
    parser.add_argument("--no-statistics-token", action="store_true",
                        help="every query token attends (default, as training: the last one pools mean and std)")
    parser.add_argument("--descriptors", action="store_true",
                        help="one more query token reads the trial's 49 gait descriptors (motion_descriptors.py)")
    parser.add_argument("--mirror", type=float, default=0.0,
                        help="share of training crops read as their left-right mirror image (default: 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from biomechgpt.cohort import load_cohort
    from biomechgpt.modeling.modeling_motion_encoder import BiomechGPTMotionEncoder
    from biomechgpt.processing.feature_extraction_motion import MotionFeatureExtractor
    from biomechgpt.processing.motion_descriptors import ENCODER_DESCRIPTORS, descriptor_names
    from biomechgpt.training.pretrain_encoder import encoder_targets, pretrain_motion_encoder
    from biomechgpt.dataset_builder.corpus import load_corpus
    from biomechgpt.training.train_lm import _trial_features, corpus_task_metadata

    if args.threads:
        torch.set_num_threads(args.threads)
    run = Path(args.run)
    if not (run / "cohort").is_dir() or not (run / "dataset").is_dir():
        print(f"{run}: not a run folder (needs cohort/ and dataset/; make one with biomechgpt run)", file=sys.stderr)
        return 2
    cohort = load_cohort(run / "cohort")
    splits = {split: load_corpus(run / "dataset", split) for split in ("train", "validation", "test")}
    metadata = corpus_task_metadata(splits["train"])
    extractor = MotionFeatureExtractor()
    features, targets = {}, {}
    for split, rows in splits.items():
        features[split] = _trial_features(cohort, sorted(rows["trial_id"].unique()), extractor, progress=False,
                                          descriptors=args.descriptors)
        targets[split] = encoder_targets(rows, metadata["task_kinds"], metadata["task_units"],
                                         classes=targets["train"].classes if split != "train" else None)
    torch.manual_seed(args.seed)
    descriptor_size = len(descriptor_names(ENCODER_DESCRIPTORS)) if args.descriptors else 0
    encoder = BiomechGPTMotionEncoder(33, args.hidden, 3, 16, statistics_token=not args.no_statistics_token,
                                      descriptor_size=descriptor_size)
    started = time.perf_counter()
    summary = pretrain_motion_encoder(
        encoder, features["train"], targets["train"], validation_features=features["validation"],
        validation_targets=targets["validation"], report_features=features["test"], report_targets=targets["test"],
        epochs=args.epochs, seed=args.seed, progress=False, mirror=args.mirror)
    seconds = time.perf_counter() - started
    tasks = list(summary["report_scores"])
    pooling = ("no statistics token" if args.no_statistics_token else "statistics token") + (
        ", descriptor token" if args.descriptors else "") + (f", mirror {args.mirror:g}" if args.mirror else "")
    print(f"motion encoder + linear heads, hidden {args.hidden}, {pooling}, {summary['trials']} training trials, "
          f"{summary['steps']} steps in {seconds:.0f} s on {torch.get_num_threads()} threads")
    print("validation learning curve (macro-F1 for closed-set tasks, Pearson r for numeric ones):")
    print(f"{'epoch':>5} {'val loss':>9} " + " ".join(f"{t[:10]:>10}" for t in tasks))
    for entry in summary["curve"]:
        scores = entry.get("validation_scores", {})
        print(f"{entry['epoch']:>5} {entry.get('validation_loss', float('nan')):>9.3f} "
              + " ".join(f"{scores.get(t, float('nan')):>10.3f}" for t in tasks))
    print(f"test, epoch {summary['selected_epoch']}:  " + " ".join(f"{summary['report_scores'][t]:>10.3f}"
                                                                   for t in tasks))
    if "report_scores_both_views" in summary:
        print("test, both views:" + " ".join(f"{summary['report_scores_both_views'][t]:>10.3f}" for t in tasks))
    if args.json:
        Path(args.json).write_text(json.dumps(summary | {"seconds_total": seconds}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
