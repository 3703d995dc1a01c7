"""Benchmark of `biomechgpt simulate`: wall time, size on disk, hours of motion and trial count.

    .venv/bin/python bench/bench_simulate.py [--participants 500] [--workers 2] [--seed 0]

The default cohort must simulate in under 2 minutes on 2 cores and stay well under 1 GB (issue 3).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from biomechgpt.cohort import load_cohort
from biomechgpt.simulation import simulate_cohort

__all__ = ["main"]


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cohort"
        start = time.perf_counter()
        cpu_start = _cpu_seconds()
        simulate_cohort(out, n_participants=args.participants, seed=args.seed, workers=args.workers)
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu_start
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        cohort = load_cohort(out)
        trials = cohort.trials
        # Random access: read 200 trials spread over all shards.
        ids = trials["trial_id"].sample(n=min(200, len(trials)), random_state=0).tolist()
        start_read = time.perf_counter()
        frames = sum(m.n_frames for _, m in cohort.iter_motions(ids))
        read_s = time.perf_counter() - start_read
        print(f"participants          {args.participants}")
        print(f"workers               {args.workers}")
        print(f"simulate wall time    {elapsed:.1f} s (load average {os.getloadavg()[0]:.1f})")
        # CPU time of this process and its workers: what the run costs on an idle machine with the same cores.
        print(f"simulate CPU time     {cpu:.1f} s (all processes)")
        print(f"size on disk          {size / 1e6:.1f} MB")
        print(f"hours of motion       {trials['duration_s'].sum() / 3600:.2f}")
        print(f"trials                {len(trials)}")
        print(f"random reads          {len(ids)} trials ({frames} frames) in {read_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
