"""Benchmark of `build_dataset`: wall time, rows and per-task counts for a cohort (default: 500 participants).

    python bench/bench_build_dataset.py --cohort runs/cohort --tokenizer runs/tokenizer
    python bench/bench_build_dataset.py --participants 500          # simulates the cohort first (not timed)

Without --tokenizer, a MotionTokenizer of the default configuration with untrained weights is used: it costs the same
to run as a trained one, so the timing holds. Prints the time split into tokenization and the rest, rows per second,
QA pairs per task and split, and whether the corpus meets the 27k-pair and 2-minute targets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


class _TimedTokenizer:
    """Forwards to a tokenizer and adds up the seconds spent in its calls."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.motions = 0

    @property
    def codebook_size(self) -> int:
        return self.tokenizer.codebook_size

    def __call__(self, motions):
        start, cpu = time.perf_counter(), time.process_time()
        out = self.tokenizer(motions)
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - cpu
        self.motions += len(motions)
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", type=Path, help="cohort folder (default: simulate one)")
    parser.add_argument("--participants", type=int, default=500, help="participants when simulating (default 500)")
    parser.add_argument("--tokenizer", type=Path, help="MotionTokenizer folder (default: untrained default config)")
    parser.add_argument("--out", type=Path, help="corpus folder (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    from biomechgpt.dataset_builder import TASKS, build_dataset
    from biomechgpt.dataset_builder.builder import load_motion_tokenizer

    work = Path(tempfile.mkdtemp(prefix="bench-build-dataset-"))
    cohort = args.cohort
    if cohort is None:
        from biomechgpt.simulation import simulate_cohort

        start = time.perf_counter()
        cohort = simulate_cohort(work / "cohort", n_participants=args.participants, seed=args.seed)
        print(f"simulated {args.participants} participants in {time.perf_counter() - start:.1f} s (not counted)")

    start = time.perf_counter()
    if args.tokenizer is not None:
        tokenizer = load_motion_tokenizer(args.tokenizer)
        source = str(args.tokenizer)
    else:
        from biomechgpt.processing.configuration_motion_tokenizer import MotionTokenizerConfig
        from biomechgpt.processing.modeling_motion_tokenizer import MotionTokenizerModel
        from biomechgpt.processing.tokenization_motion import MotionTokenizer

        torch.manual_seed(0)
        tokenizer = MotionTokenizer(MotionTokenizerModel(MotionTokenizerConfig()))
        source = "default config, untrained weights"
    load_s = time.perf_counter() - start
    timed = _TimedTokenizer(tokenizer)

    out = args.out or work / "qa"
    start, cpu = time.perf_counter(), time.process_time()
    build_dataset(cohort, None, out, seed=args.seed, tokenizer=timed, overwrite=args.out is not None)
    build_s, build_cpu = time.perf_counter() - start, time.process_time() - cpu

    rows = pd.concat([pd.read_parquet(p, columns=["split", "task", "trial_id"]) for p in
                      sorted((out / "data").glob("*.parquet"))], ignore_index=True)
    counts = rows.groupby(["task", "split"]).size().unstack(fill_value=0)
    counts = counts.reindex(index=list(TASKS), columns=[c for c in ("train", "validation", "test") if c in counts])
    counts["total"] = counts.sum(axis=1)
    size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6

    print(f"cohort: {cohort}  trials: {rows.trial_id.nunique()}  tokenizer: {source}")
    print(f"torch threads: {torch.get_num_threads()}")
    print(counts.to_string())
    print(f"rows: {len(rows)}  ({len(rows) / build_s:.0f} rows/s)  corpus on disk: {size_mb:.1f} MB")
    print(f"time: {build_s:.1f} s build (tokenizing {timed.motions} trials: {timed.seconds:.1f} s; "
          f"questions, Parquet and card: {build_s - timed.seconds:.1f} s) + {load_s:.1f} s tokenizer load")
    # on shared cores wall time depends on the neighbours; CPU time of this process does much less
    rest_cpu = build_cpu - timed.cpu_seconds
    print(f"CPU time: {build_cpu:.1f} s (tokenizing {timed.cpu_seconds:.1f} s, rest {rest_cpu:.1f} s); "
          f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ok_rows, ok_time = len(rows) >= 27_000, build_s + load_s < 120
    print(f"targets: >= 27k pairs {'met' if ok_rows else 'MISSED'}; under 2 minutes {'met' if ok_time else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({
            "rows": len(rows), "trials": int(rows.trial_id.nunique()), "build_s": build_s, "tokenize_s": timed.seconds,
            "build_cpu_s": build_cpu, "tokenize_cpu_s": timed.cpu_seconds,
            "tokenizer_load_s": load_s, "size_mb": size_mb, "per_task": counts["total"].to_dict(),
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
