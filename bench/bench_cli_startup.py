"""Time the start-up of the `biomechgpt` command: `biomechgpt --help` and `biomechgpt inspect FILE`.

Usage: python bench/bench_cli_startup.py [--repeats 7] [--file PATH]

Each command runs `--repeats` times as a fresh process (what a user waits for at the prompt) after one untimed warm-up
run (the first run after an install also compiles bytecode); the median wall time is reported, with the time of a bare
`python -c pass` for scale. FILE defaults to a real OpenSim recording from ../shared/reference_motion/.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["time_command", "main"]

REFERENCE_MOTION = Path(__file__).resolve().parents[1].parent / "shared" / "reference_motion" / "normal.mot"


def time_command(argv: list[str], repeats: int) -> list[float]:
    """Wall seconds of `repeats` runs of `argv` (after one warm-up run); raises if the command fails."""
    subprocess.run(argv, check=True, capture_output=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def _command() -> list[str]:
    # The installed console script when it sits next to this interpreter (what users run), else the module.
    script = Path(sys.executable).with_name("biomechgpt")
    if script.is_file():
        return [str(script)]
    found = shutil.which("biomechgpt")
    return [found] if found else [sys.executable, "-m", "biomechgpt.cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--file", type=Path, default=REFERENCE_MOTION, help="motion file for inspect")
    args = parser.parse_args()
    if not args.file.is_file():
        parser.error(f"--file {args.file}: not found")
    command = _command()
    cases = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("biomechgpt --help", [*command, "--help"]),
        (f"biomechgpt inspect {args.file.name}", [*command, "inspect", str(args.file)]),
    ]
    print(f"{'command':<40}{'median s':>10}{'min s':>8}{'max s':>8}  ({args.repeats} runs)")
    for label, argv in cases:
        times = time_command(argv, args.repeats)
        print(f"{label:<40}{statistics.median(times):>10.3f}{min(times):>8.3f}{max(times):>8.3f}")


if __name__ == "__main__":
    main()
