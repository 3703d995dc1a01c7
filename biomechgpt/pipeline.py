"""The main job, `biomechgpt run`: simulate → tokenizer → QA corpus → fine-tune → evaluate, into `runs/<name>/`.

Each stage runs as its own `biomechgpt <stage>` process. That keeps the stages honest (the pipeline uses exactly the
commands a user runs), lets `timings.json` report each stage's own peak memory (the child's `ru_maxrss`, which a
single process could not separate), and frees each stage's memory before the next starts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from biomechgpt.cli import UsageError, available_commands

__all__ = ["PipelineSettings", "Stage", "STAGES", "run_pipeline"]


@dataclass(frozen=True)
class PipelineSettings:
    """What a run of the pipeline builds. `None` leaves a stage's own default in place.

    Args:
        participants (`int`): size of the simulated cohort.
        seed (`int`): one seed for every stage.
        tokenizer_steps (`int`, *optional*): MotionTokenizer training steps.
        train_epochs (`float`, *optional*): language-model fine-tuning epochs over the QA corpus.
        train_max_steps (`int`, *optional*): cap on fine-tuning optimizer steps.
        quick_evaluation (`bool`): small baseline budgets in the evaluation stage.
    """

    participants: int
    seed: int = 0
    tokenizer_steps: int | None = None
    train_epochs: float | None = None
    train_max_steps: int | None = None
    quick_evaluation: bool = False

    @classmethod
    def default(cls, seed: int = 0) -> PipelineSettings:
        return cls(participants=500, seed=seed)

    @classmethod
    def quick(cls, seed: int = 0) -> PipelineSettings:
        return cls(participants=40, seed=seed, tokenizer_steps=150, train_max_steps=60, quick_evaluation=True)


def _optional(flag: str, value) -> list[str]:
    return [] if value is None else [flag, str(value)]


@dataclass(frozen=True)
class Stage:
    name: str  # the pipeline's name for it, also the key in timings.json
    command: str  # the biomechgpt.commands module that implements it
    output: str  # folder (or file) under the run directory that it produces
    argv: Callable[[Path, PipelineSettings], list[str]]


STAGES: tuple[Stage, ...] = (
    Stage(
        "simulate",
        "simulate",
        "cohort",
        lambda run, s: ["simulate", "--participants", str(s.participants), "--seed", str(s.seed),
                        "--out", str(run / "cohort")],
    ),
    Stage(
        "train_tokenizer",
        "train_tokenizer",
        "tokenizer",
        lambda run, s: ["train-tokenizer", "--cohort", str(run / "cohort"), "--out", str(run / "tokenizer"),
                        "--seed", str(s.seed), *_optional("--steps", s.tokenizer_steps)],
    ),
    Stage(
        "build_dataset",
        "build_dataset",
        "dataset",
        lambda run, s: ["build-dataset", "--cohort", str(run / "cohort"), "--tokenizer", str(run / "tokenizer"),
                        "--out", str(run / "dataset"), "--seed", str(s.seed)],
    ),
    Stage(
        "train",
        "train",
        "model",
        lambda run, s: ["train", "--dataset", str(run / "dataset"), "--tokenizer", str(run / "tokenizer"),
                        "--base-model", "tiny", "--out", str(run / "model"), "--seed", str(s.seed),
                        *_optional("--epochs", s.train_epochs), *_optional("--max-steps", s.train_max_steps)],
    ),
    Stage(
        "evaluate",
        "evaluate",
        "metrics.json",
        lambda run, s: ["evaluate", "--model", str(run / "model"), "--dataset", str(run / "dataset"), "--cohort",
                        str(run / "cohort"), "--out", str(run), *(["--quick"] if s.quick_evaluation else [])],
    ),
)


def _run_stage(argv: list[str]) -> tuple[int, float, float]:
    """Runs `biomechgpt ARGV` in a child process; returns (exit status, wall seconds, peak RSS in MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "biomechgpt.cli", *argv])
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in kilobytes on Linux.
    return proc.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024.0


def run_pipeline(
    out: str | Path = "runs",
    name: str = "default",
    *,
    quick: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    stages: list[str] | None = None,
) -> Path:
    """Runs the whole pipeline into `out/name/` and returns that folder.

    Stages whose command is not part of this installation are reported as missing and skipped together with every
    stage after them (each needs the previous one's output).
    """
    settings = PipelineSettings.quick(seed) if quick else PipelineSettings.default(seed)
    run_dir = Path(out) / name
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise UsageError(f"{run_dir}: run folder exists and is not empty (pass --overwrite or another --name)")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    wanted = [s.name for s in STAGES] if stages is None else stages
    unknown = sorted(set(wanted) - {s.name for s in STAGES})
    if unknown:
        raise UsageError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(s.name for s in STAGES)}")
    present = set(available_commands())
    timings: dict[str, dict[str, float]] = {}
    missing: list[str] = []
    total_start = time.perf_counter()
    for index, stage in enumerate(STAGES):
        if stage.name not in wanted:
            continue
        if stage.command not in present or missing:
            missing.append(stage.name)
            continue
        print(f"\n== [{index + 1}/{len(STAGES)}] {stage.name} ==", flush=True)
        status, wall_s, peak_mb = _run_stage(stage.argv(run_dir, settings))
        timings[stage.name] = {"wall_s": round(wall_s, 3), "peak_rss_mb": round(peak_mb, 1)}
        _write_timings(run_dir, timings, time.perf_counter() - total_start)
        if status != 0:
            raise UsageError(f"stage {stage.name} failed with exit status {status}; outputs so far in {run_dir}")
    _write_timings(run_dir, timings, time.perf_counter() - total_start)
    _print_summary(run_dir, timings, missing)
    return run_dir


def _write_timings(run_dir: Path, timings: dict, total_wall_s: float) -> None:
    payload = {"stages": timings, "total_wall_s": round(total_wall_s, 3)}
    (run_dir / "timings.json").write_text(json.dumps(payload, indent=2) + "\n")


def _print_summary(run_dir: Path, timings: dict, missing: list[str]) -> None:
    print(f"\nRun folder: {run_dir}")
    print(f"{'stage':<18}{'wall s':>10}{'peak MB':>10}")
    for stage, t in timings.items():
        print(f"{stage:<18}{t['wall_s']:>10.1f}{t['peak_rss_mb']:>10.0f}")
    if missing:
        print(f"Not run (not part of this installation yet): {', '.join(missing)}")
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        print()
        print(format_results_table(json.loads(metrics_path.read_text())))


def format_results_table(metrics: dict) -> str:
    """A per-task table of BiomechGPT against the baseline from a metrics.json payload."""
    from biomechgpt.metrics import HEADLINE_METRIC, METRICS_BY_TASK

    lines = [f"{'task':<20}{'n':>6}  {'metric':<10}{'BiomechGPT':>12}{'baseline':>10}"]
    for task, entry in metrics.get("tasks", {}).items():
        ours = entry.get("biomechgpt", {})
        metric = HEADLINE_METRIC[METRICS_BY_TASK.get(task, "text")]
        base = entry.get("baseline", {}).get(metric)
        lines.append(
            f"{task:<20}{entry.get('n', 0):>6}  {metric:<10}{_fmt(ours.get(metric)):>12}{_fmt(base):>10}"
        )
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"
