"""The main job, `biomechgpt run`: simulate → tokenizer → QA corpus → fine-tune → evaluate, into `runs/<name>/`.

Each stage runs as its own `biomechgpt <stage>` process. That keeps the stages honest (the pipeline uses exactly the
commands a user runs), lets `timings.json` report each stage's own peak memory (the child's `ru_maxrss`, which a
single process could not separate), and frees each stage's memory before the next starts.

A run survives being killed: `run.json` in the run folder records the settings and each stage the moment it finished
(written atomically), and running the same command again continues from there. Finished stages are skipped; the stage
that was cut off starts over, except `train_tokenizer` and `train`, which resume from their own checkpoints. On Linux a
stage process dies with the pipeline, and the run folder is locked while a pipeline works in it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from biomechgpt.commands.registry import available_commands
from biomechgpt.errors import UsageError

__all__ = ["PipelineSettings", "RECIPES", "Stage", "STAGES", "RUN_STATE", "run_pipeline"]

RUN_STATE = "run.json"
"""The run folder's record of its settings and finished stages (what `biomechgpt run` continues from)."""


@dataclass(frozen=True)
class PipelineSettings:
    """What a run of the pipeline builds. `None` leaves a stage's own default in place.

    Args:
        participants (`int`): size of the simulated cohort.
        held_out (`int`, *optional*): participants in each of its validation and test splits (the rest train);
            `None` holds out 15% each.
        seed (`int`): one seed for every stage.
        tokenizer_steps (`int`, *optional*): MotionTokenizer training steps.
        train_epochs (`float`, *optional*): language-model fine-tuning epochs over the QA corpus (stage 2b).
        train_max_steps (`int`, *optional*): cap on fine-tuning optimizer steps.
        encoder_epochs (`float`, *optional*): stage 1, epochs of the motion encoder alone.
        alignment_epochs (`float`, *optional*): stage 2a, epochs over the captions.
        readout_answer_weight (`float`, *optional*): how much the encoder's task heads count in answers beside the
            language model.
        quick_evaluation (`bool`): small baseline budgets in the evaluation stage.
    """

    participants: int
    seed: int = 0
    held_out: int | None = None
    tokenizer_steps: int | None = None
    train_epochs: float | None = None
    train_max_steps: int | None = None
    encoder_epochs: float | None = None
    alignment_epochs: float | None = None
    readout_answer_weight: float | None = None
    quick_evaluation: bool = False

    @classmethod
    def default(cls, seed: int = 0) -> PipelineSettings:
        # What the answers know comes from stage 1 (the motion encoder and its task heads), and stage 1 is limited by
        # the number of people it learns from: on the same 75 test participants its heads score device 0.66 -> 0.78
        # -> 0.83 and diagnosis 0.71 -> 0.79 -> 0.82 with 350, 850 and 1,850 training participants (README, "More
        # people"). So the cohort has 1,000 participants with 75 each held out for validation and test (the same
        # evaluation cost as 500 at 15%), stage 1 runs 8 epochs (a time choice: 12 epochs, 408 s against 295 s,
        # scored device 0.78 against 0.75 and diagnosis equal), and the language model, which only puts the heads'
        # reading into words, gets the same number of steps as before on 2.4 times the data: 0.4 caption epochs and
        # 0.1 QA epochs, the heads counting twice.
        # The MotionTokenizer's codes feed the corpus, the chat page and the out-of-distribution check, not this
        # model's answers: 600 steps. About 15 minutes on 2 CPU cores with AVX512-BF16 (README).
        return cls(participants=1000, held_out=75, seed=seed, tokenizer_steps=600, train_epochs=0.1,
                   encoder_epochs=8.0, alignment_epochs=0.4, readout_answer_weight=2.0)

    @classmethod
    def full(cls, seed: int = 0) -> PipelineSettings:
        # Every stage at its own length (MotionTokenizer 3,000 steps, 12 encoder epochs, 4 caption epochs, one QA
        # epoch, heads weighted 1) on the 500-participant cohort of d13: 37 minutes for a language model that writes
        # better free text on its own (summary fields right 0.63 against 0.36) and closer reconstructions. Its
        # closed-set answers are those of 350 training participants, below the default's (README).
        return cls(participants=500, seed=seed, train_epochs=1.0)

    @classmethod
    def quick(cls, seed: int = 0) -> PipelineSettings:
        return cls(participants=40, seed=seed, tokenizer_steps=150, train_max_steps=60, quick_evaluation=True)


RECIPES: dict[str, Callable[[int], PipelineSettings]] = {
    "default": PipelineSettings.default,
    "full": PipelineSettings.full,
    "quick": PipelineSettings.quick,
}
"""`biomechgpt run`'s recipes: `default`, `full` (every stage at its own, longer default) and `quick` (a smoke
test)."""


def _optional(flag: str, value) -> list[str]:
    return [] if value is None else [flag, str(value)]


@dataclass(frozen=True)
class Stage:
    name: str  # the pipeline's name for it, also the key in timings.json
    command: str  # the biomechgpt.commands module that implements it
    output: str  # folder (or file) under the run directory that it produces
    argv: Callable[[Path, PipelineSettings], list[str]]
    resumes: bool = False  # a rerun continues from the stage's own checkpoints in `output` (else it starts over)


STAGES: tuple[Stage, ...] = (
    Stage(
        "simulate",
        "simulate",
        "cohort",
        lambda run, s: ["simulate", "--participants", str(s.participants), "--seed", str(s.seed),
                        *_optional("--held-out", s.held_out), "--out", str(run / "cohort")],
    ),
    Stage(
        "train_tokenizer",
        "train_tokenizer",
        "tokenizer",
        lambda run, s: ["train-tokenizer", "--cohort", str(run / "cohort"), "--out", str(run / "tokenizer"),
                        "--seed", str(s.seed), *_optional("--steps", s.tokenizer_steps)],
        resumes=True,
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
                        *_optional("--epochs", s.train_epochs), *_optional("--max-steps", s.train_max_steps),
                        *_optional("--encoder-epochs", s.encoder_epochs),
                        *_optional("--alignment-epochs", s.alignment_epochs),
                        *_optional("--readout-answer-weight", s.readout_answer_weight)],
        resumes=True,
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
    proc = subprocess.Popen([sys.executable, "-m", "biomechgpt.cli", *argv], preexec_fn=_die_with_parent())
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in kilobytes on Linux.
    return proc.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024.0


def _die_with_parent() -> Callable[[], None] | None:
    """Linux: make the stage process receive SIGKILL when the pipeline dies, so a killed `biomechgpt run` leaves no
    stage writing into the run folder (which a rerun would then share). Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: after fork only the call may run
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the pipeline died before the setting took effect
            os._exit(1)

    return preexec


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder (the kernel drops it when the process dies, however it dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{run_dir}: another biomechgpt run is working in this folder") from None
        yield
    finally:
        os.close(fd)


def _write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically: a temporary file in the same folder, then `os.replace`, so a kill at any moment leaves
    the old file or the new one, never half of one."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                     delete=False) as handle:
        handle.write(json.dumps(payload, indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


def _read_json(path: Path) -> dict | None:
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def _start_or_continue(run_dir: Path, settings: PipelineSettings) -> tuple[dict, dict, float]:
    """The run's state (`run.json`), the timings of its finished stages and the wall time already spent. A new run
    gets a fresh state; an existing one must have been started with the same settings."""
    wanted = asdict(settings)
    if not any(run_dir.iterdir()):
        state = {"settings": wanted, "finished_stages": []}
        _write_json(run_dir / RUN_STATE, state)
        return state, {}, 0.0
    state = _read_json(run_dir / RUN_STATE)
    if state is None or not isinstance(state.get("settings"), dict):
        raise UsageError(f"{run_dir}: run folder exists and is not empty, and has no {RUN_STATE} to continue from "
                         "(pass --overwrite or another --name)")
    changed = {k: (state["settings"].get(k), v) for k, v in wanted.items() if state["settings"].get(k) != v}
    if changed:
        diff = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items())
        raise UsageError(f"{run_dir}: this run was started with other settings ({diff}); pass --overwrite to start "
                         "over or another --name")
    finished = state.setdefault("finished_stages", [])
    previous = _read_json(run_dir / "timings.json") or {}
    timings = {k: v for k, v in (previous.get("stages") or {}).items() if k in finished}
    return state, timings, float(previous.get("total_wall_s") or 0.0)


def _clear(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def run_pipeline(
    out: str | Path = "runs",
    name: str = "default",
    *,
    quick: bool = False,
    recipe: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    stages: list[str] | None = None,
    participants: int | None = None,
    held_out: int | None = None,
) -> Path:
    """Runs the whole pipeline into `out/name/` and returns that folder.

    An existing run folder is continued: stages recorded as finished in its `run.json` (whose output is still there)
    are skipped, a stage that was cut off starts over or, for `train_tokenizer` and `train`, resumes from its
    checkpoints. `overwrite=True` empties the folder and starts over. Stages whose command is not part of this
    installation are reported as missing and skipped together with every stage after them (each needs the previous
    one's output). `recipe` picks the settings from [`RECIPES`] ("default", "full" or "quick"; `quick=True` is
    "quick"). `participants` and `held_out` replace the recipe's cohort size and held-out participants (validation
    and test each); the training lengths stay the recipe's, in epochs, so a larger cohort trains for longer.
    """
    recipe = recipe if recipe is not None else ("quick" if quick else "default")
    if recipe not in RECIPES:
        raise UsageError(f"recipe: unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    if quick and recipe != "quick":
        raise UsageError(f"recipe: quick=True contradicts recipe {recipe!r}")
    settings = RECIPES[recipe](seed)
    if participants is not None and (isinstance(participants, bool) or not isinstance(participants, int)
                                     or participants < 1):
        raise UsageError(f"participants: expected a whole number of at least 1, got {participants!r}")
    if participants is not None or held_out is not None:
        settings = replace(settings, participants=participants or settings.participants,
                           held_out=held_out if held_out is not None else settings.held_out)
    from biomechgpt.simulation.simulator import check_held_out

    try:  # here, before the run folder exists, not when the simulate stage starts
        check_held_out(settings.held_out, settings.participants)
    except ValueError as err:
        raise UsageError(str(err)) from None
    run_dir = Path(out) / name
    wanted = [s.name for s in STAGES] if stages is None else stages
    unknown = sorted(set(wanted) - {s.name for s in STAGES})
    if unknown:
        raise UsageError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(s.name for s in STAGES)}")
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"{run_dir}: exists and is not a folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    with _locked(run_dir):
        if overwrite:
            for child in run_dir.iterdir():
                _clear(child)
        state, timings, earlier_s = _start_or_continue(run_dir, settings)
        _run_stages(run_dir, settings, wanted, state, timings, earlier_s)
    return run_dir


def _run_stages(run_dir: Path, settings: PipelineSettings, wanted: list[str], state: dict, timings: dict,
                earlier_s: float) -> None:
    present = set(available_commands())
    missing: list[str] = []
    finished = state["finished_stages"]
    start = time.perf_counter()
    for index, stage in enumerate(STAGES):
        if stage.name not in wanted:
            continue
        if stage.command not in present or missing:
            missing.append(stage.name)
            continue
        output = run_dir / stage.output
        if stage.name in finished and output.exists():
            print(f"\n== [{index + 1}/{len(STAGES)}] {stage.name}: finished earlier, skipped ==", flush=True)
            continue
        if stage.name in finished:  # its output was removed since: run it again
            finished.remove(stage.name)
            _write_json(run_dir / RUN_STATE, state)
        if not stage.resumes:
            _clear(output)  # whatever a cut-off attempt left behind
        print(f"\n== [{index + 1}/{len(STAGES)}] {stage.name} ==", flush=True)
        status, wall_s, peak_mb = _run_stage(stage.argv(run_dir, settings))
        timings[stage.name] = {"wall_s": round(wall_s, 3), "peak_rss_mb": round(peak_mb, 1)}
        _write_timings(run_dir, timings, earlier_s + time.perf_counter() - start)
        if status != 0:
            raise UsageError(f"stage {stage.name} failed with exit status {status}; outputs so far in {run_dir} "
                             "(rerun the same command to continue)")
        finished.append(stage.name)
        _write_json(run_dir / RUN_STATE, state)
    _write_timings(run_dir, timings, earlier_s + time.perf_counter() - start)
    _print_summary(run_dir, timings, missing)


def _write_timings(run_dir: Path, timings: dict, total_wall_s: float) -> None:
    # stages in pipeline order, whichever session ran them
    ordered = {s.name: timings[s.name] for s in STAGES if s.name in timings}
    _write_json(run_dir / "timings.json", {"stages": ordered, "total_wall_s": round(total_wall_s, 3)})


def _print_summary(run_dir: Path, timings: dict, missing: list[str]) -> None:
    print(f"\nRun folder: {run_dir}")
    print(f"{'stage':<18}{'wall s':>10}{'peak MB':>10}")
    for stage, t in sorted(timings.items(), key=lambda item: [s.name for s in STAGES].index(item[0])):
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
