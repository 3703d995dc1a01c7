"""Time `load_motion` on a 10-minute 100 Hz OpenSim `.mot` file (60,000 rows x 40 columns).

Usage: python bench/bench_load_motion.py [--minutes 10] [--rate 100] [--repeats 7]

The file is written to a temporary folder in the layout OpenSim IK writes (8-decimal, tab-separated, degrees,
gait2392 knee sign, extra wrist columns), then loaded `--repeats` times; the median time is reported. The first load
is timed separately because it includes one-off imports.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from biomechgpt.motion_io import load_motion
from biomechgpt.processing.motion import CANONICAL_COORDINATES

__all__ = ["write_long_mot", "main"]


def write_long_mot(path: Path, minutes: float = 10.0, rate: float = 100.0, seed: int = 0) -> tuple[int, int]:
    """Write a gait-like `.mot` of `minutes` at `rate` Hz; returns (rows, columns including time)."""
    rng = np.random.default_rng(seed)
    n = int(round(minutes * 60 * rate))
    t = np.arange(n) / rate
    names = list(CANONICAL_COORDINATES) + ["knee_angle_r_beta", "knee_angle_l_beta", "wrist_flex_r", "wrist_dev_r",
                                           "wrist_flex_l", "wrist_dev_l"]
    phase = 2 * np.pi * 0.9 * t
    columns = []
    for k, name in enumerate(names):
        amplitude = 30.0 if name.startswith(("hip", "knee", "arm", "elbow")) else 8.0
        signal = amplitude * np.sin(phase + 0.3 * k) + rng.normal(0.0, 0.2, n)
        if name.startswith("knee_angle") and not name.endswith("beta"):
            signal = -(amplitude + signal)  # gait2392 sign: flexion negative
        if name in ("pelvis_tx", "pelvis_ty", "pelvis_tz"):
            signal = {"pelvis_tx": 1.2 * t, "pelvis_ty": 0.95 + 0.02 * np.sin(2 * phase)}.get(name, 0.01 * signal)
        columns.append(signal)
    table = np.column_stack([t, *columns])
    header = f"long_trial\nversion=1\nnRows={n}\nnColumns={len(names) + 1}\ninDegrees=yes\nendheader\n"
    header += "\t".join(["time", *names])
    np.savetxt(path, table, fmt="%.8f", delimiter="\t", header=header, comments="")
    return n, len(names) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long_trial.mot"
        rows, cols = write_long_mot(path, args.minutes, args.rate)
        size_mb = path.stat().st_size / 1e6
        start = time.perf_counter()
        motion = load_motion(path)
        first = time.perf_counter() - start
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            motion = load_motion(path)
            times.append(time.perf_counter() - start)
    assert motion.n_frames == int(args.minutes * 60 * 30), motion.n_frames
    assert motion.meta["knee_convention"] == "negative"
    median = statistics.median(times)
    print(f"load_motion: {rows} rows x {cols} columns ({size_mb:.1f} MB .mot, {args.minutes:g} min at "
          f"{args.rate:g} Hz) -> {motion.n_frames} canonical frames")
    print(f"  first load (incl. imports) {first:.3f} s; median of {args.repeats} {median:.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}); target < 0.5 s: {'PASS' if median < 0.5 else 'FAIL'}")


if __name__ == "__main__":
    main()
