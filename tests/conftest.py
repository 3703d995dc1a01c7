from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REFERENCE_MOTION_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference_motion"


@pytest.fixture(scope="session")
def reference_motion_dir() -> Path:
    """The real recordings in ../shared/reference_motion/ (skips when this checkout has no shared folder)."""
    if not REFERENCE_MOTION_DIR.is_dir():
        pytest.skip(f"real reference recordings not found at {REFERENCE_MOTION_DIR}")
    return REFERENCE_MOTION_DIR


@dataclass
class QuickRun:
    """A `biomechgpt run --quick` that was killed and continued (see the `quick_run` fixture)."""

    run: Path  # the run folder, finished
    killed_after: list[str]  # the stages run.json listed as finished when the first process was killed
    stage_outlived_pipeline: bool | None  # a stage process was still alive 10 s after the kill (None: not Linux)
    cohort_mtime_ns: int  # of cohort/participants.parquet, before the second process started
    status: int  # exit status of the second process
    output: str  # its stdout and stderr


def _alive_in_group(pgid: int) -> list[int]:
    """Processes of process group `pgid` that are alive (zombies excluded), from /proc."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory) -> QuickRun:
    """The main job as a user runs it, the hard way: `biomechgpt run --quick` in a child process gets SIGKILL while
    the tokenizer trains (after `simulate` finished), then the same command continues the run to the end.

    One quick run (a few minutes) shared by the kill test, the end-to-end checks and the release dry run."""
    out = tmp_path_factory.mktemp("runs")
    run = out / "quick"
    argv = [sys.executable, "-m", "biomechgpt.cli", "run", "--quick", "--out", str(out)]
    log = out / "killed.log"
    with open(log, "w") as handle:
        first = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, finished_at = time.monotonic() + 900, None
        while True:
            try:
                finished = json.loads((run / "run.json").read_text())["finished_stages"]
            except (OSError, ValueError, KeyError):
                finished = []
            if "simulate" in finished:
                finished_at = finished_at or time.monotonic()
                if time.monotonic() - finished_at > 1.0:  # the tokenizer's stage process has started
                    break
            if first.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the run ended or stalled before it could be killed:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        outlived = None
        if sys.platform.startswith("linux"):
            until = time.monotonic() + 10
            while _alive_in_group(first.pid) and time.monotonic() < until:
                time.sleep(0.1)
            outlived = bool(_alive_in_group(first.pid))
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(first.pid, signal.SIGKILL)
    killed_after = json.loads((run / "run.json").read_text())["finished_stages"]
    mtime = (run / "cohort" / "participants.parquet").stat().st_mtime_ns
    second = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    return QuickRun(run, killed_after, outlived, mtime, second.returncode, second.stdout + second.stderr)
