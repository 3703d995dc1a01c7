"""`biomechgpt run` on an existing run folder continues it: finished stages are skipped, a cut-off stage starts over
(or resumes from its checkpoints), other settings are refused, `--overwrite` starts over, two runs never share a
folder. The stages are fakes that write their outputs; the real kill test is in test_pipeline_end_to_end.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from biomechgpt import cli
from biomechgpt.cli import UsageError
from biomechgpt.pipeline import RUN_STATE, STAGES, run_pipeline

ALL = [stage.name for stage in STAGES]
COMMAND = {stage.name: stage.name.replace("_", "-") for stage in STAGES}  # the word argv starts with


class FakeStages:
    """Stands in for the stage processes: records each call, writes the stage's output, fails where told (after
    writing part of its output, as a killed stage would)."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[str] = []
        self.argv: dict[str, list[str]] = {}  # command -> its last argv
        self.fail_at: str | None = None
        self.seen_checkpoint: dict[str, bool] = {}
        monkeypatch.setattr("biomechgpt.pipeline._run_stage", self)

    def __call__(self, argv: list[str]) -> tuple[int, float, float]:
        command = argv[0]
        self.calls.append(command)
        self.argv[command] = list(argv)
        out = Path(argv[argv.index("--out") + 1])
        if command == "evaluate":
            (out / "metrics.json").write_text(json.dumps({"tasks": {}}))
        else:
            self.seen_checkpoint[command] = (out / "checkpoints" / "step-1").is_file()
            (out / "checkpoints").mkdir(parents=True, exist_ok=True)
            (out / "checkpoints" / "step-1").write_text("half of the work")
            if command != self.fail_at:
                (out / "done").write_text(command)
        return (1 if command == self.fail_at else 0), 0.5, 100.0


@pytest.fixture
def stages(monkeypatch) -> FakeStages:
    return FakeStages(monkeypatch)


def _state(run: Path) -> dict:
    return json.loads((run / RUN_STATE).read_text())


def test_a_rerun_skips_finished_stages_and_redoes_the_cut_off_one(tmp_path, stages, capsys):
    stages.fail_at = "build-dataset"
    with pytest.raises(UsageError, match=r"stage build_dataset failed .* \(rerun the same command to continue\)"):
        run_pipeline(tmp_path, "r", quick=True)
    run = tmp_path / "r"
    assert _state(run)["finished_stages"] == ["simulate", "train_tokenizer"]
    assert (run / "dataset" / "checkpoints" / "step-1").is_file()  # what the failed attempt left

    stages.fail_at, stages.calls = None, []
    capsys.readouterr()
    assert cli.main(["run", "--quick", "--out", str(tmp_path), "--name", "r"]) == 0
    assert stages.calls == ["build-dataset", "train", "evaluate"]
    assert stages.seen_checkpoint["build-dataset"] is False  # a stage without checkpoints starts from scratch
    out = capsys.readouterr().out
    assert "[1/5] simulate: finished earlier, skipped" in out and "[2/5] train_tokenizer: finished earlier" in out
    assert _state(run)["finished_stages"] == ALL
    timings = json.loads((run / "timings.json").read_text())
    assert list(timings["stages"]) == ALL and timings["total_wall_s"] >= 0
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]

    stages.calls = []
    assert cli.main(["run", "--quick", "--out", str(tmp_path), "--name", "r"]) == 0
    assert stages.calls == []  # nothing left to do


def test_train_resumes_from_its_checkpoints(tmp_path, stages):
    stages.fail_at = "train"
    with pytest.raises(UsageError):
        run_pipeline(tmp_path, "r", quick=True)
    stages.fail_at, stages.calls = None, []
    run_pipeline(tmp_path, "r", quick=True)
    assert stages.calls == ["train", "evaluate"] and stages.seen_checkpoint["train"] is True


def test_a_finished_stage_whose_output_is_gone_runs_again(tmp_path, stages):
    run = run_pipeline(tmp_path, "r", quick=True)
    (run / "metrics.json").unlink()
    stages.calls = []
    run_pipeline(tmp_path, "r", quick=True)
    assert stages.calls == ["evaluate"]


def test_other_settings_are_refused_and_overwrite_starts_over(tmp_path, stages, capsys):
    run = run_pipeline(tmp_path, "r", quick=True)
    (run / "notes.txt").write_text("stale")
    stages.calls = []
    assert cli.main(["run", "--quick", "--seed", "1", "--out", str(tmp_path), "--name", "r"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"biomechgpt run: error: {run}: this run was started with other settings (seed 0 "
                                "-> 1); pass --overwrite to start over or another --name"]
    assert stages.calls == [] and (run / "notes.txt").is_file()

    run_pipeline(tmp_path, "r", quick=True, seed=1, overwrite=True)
    assert stages.calls == [COMMAND[name] for name in ALL] and not (run / "notes.txt").exists()
    assert _state(run)["settings"]["seed"] == 1


def _option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_full_trains_every_stage_longer_than_the_default(tmp_path, stages, capsys):
    assert cli.main(["run", "--out", str(tmp_path)]) == 0
    default = dict(stages.argv)
    assert (tmp_path / "default" / "metrics.json").is_file()
    assert _option(default["simulate"], "--participants") == "1000"
    assert _option(default["simulate"], "--held-out") == "75"
    assert _option(default["train-tokenizer"], "--steps") == "600"
    assert [_option(default["train"], f) for f in ("--encoder-epochs", "--alignment-epochs", "--epochs",
                                                   "--readout-answer-weight")] == ["8.0", "0.4", "0.1", "2.0"]

    stages.argv = {}
    assert cli.main(["run", "--full", "--out", str(tmp_path)]) == 0
    full = stages.argv
    assert (tmp_path / "full" / "metrics.json").is_file()
    assert _option(full["simulate"], "--participants") == "500" and _option(full["simulate"], "--held-out") is None
    assert _option(full["train-tokenizer"], "--steps") is None  # the stages' own defaults: 3,000 steps, 12 + 4 epochs
    assert [_option(full["train"], f) for f in ("--encoder-epochs", "--alignment-epochs", "--epochs",
                                                "--readout-answer-weight")] == [None, None, "1.0", None]

    capsys.readouterr()
    assert cli.main(["run", "--full", "--out", str(tmp_path), "--name", "default"]) == 2  # another recipe's folder
    assert "this run was started with other settings (participants 1000 -> 500, held_out 75 -> None" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["run", "--full", "--quick", "--out", str(tmp_path)])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(UsageError, match="recipe: unknown recipe 'fast'"):
        run_pipeline(tmp_path, "x", recipe="fast")


def test_unknown_stages_are_refused_before_anything_is_removed(tmp_path, stages):
    run = run_pipeline(tmp_path, "r", quick=True)
    with pytest.raises(UsageError, match="unknown stage"):
        run_pipeline(tmp_path, "r", quick=True, overwrite=True, stages=["simulate", "dance"])
    assert _state(run)["finished_stages"] == ALL


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from biomechgpt.pipeline import _locked
with _locked(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith(("linux", "darwin")), reason="the run lock is POSIX flock")
def test_a_folder_another_process_is_working_in_is_refused_until_it_dies(tmp_path, stages):
    """Another `biomechgpt run` process holds the folder: this one is refused, with or without --overwrite, and
    nothing is removed; once that process is killed (SIGKILL, no clean-up), the kernel has dropped its lock."""
    run = tmp_path / "r"
    run.mkdir()
    (run / "notes.txt").write_text("the other run's")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UsageError, match=f"^{run}: another biomechgpt run is working in this folder$"):
            run_pipeline(tmp_path, "r", quick=True)
        with pytest.raises(UsageError, match="another biomechgpt run"):
            run_pipeline(tmp_path, "r", quick=True, overwrite=True)
        assert stages.calls == [] and (run / "notes.txt").is_file()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    run_pipeline(tmp_path, "r", quick=True, overwrite=True)  # the lock went with its holder
    assert stages.calls == [COMMAND[name] for name in ALL] and not (run / "notes.txt").exists()


def test_two_threads_starting_runs_in_one_folder_one_runs_one_is_refused(tmp_path, stages, monkeypatch):
    """Two runs started at the same moment in one folder (two threads, each opening the folder for its own lock):
    exactly one runs the stages, the other is refused while it works."""
    import threading

    inside, release = threading.Event(), threading.Event()

    def slow_stage(argv):  # the stages wait until the other thread has been turned away (60 s if it never is)
        inside.set()
        release.wait(timeout=60)
        return stages(argv)

    monkeypatch.setattr("biomechgpt.pipeline._run_stage", slow_stage)
    outcomes: list[str] = []

    def start() -> None:
        try:
            run_pipeline(tmp_path, "r", quick=True)
            outcomes.append("ran")
        except UsageError as err:
            outcomes.append(str(err))
            release.set()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes) == sorted(["ran", f"{tmp_path / 'r'}: another biomechgpt run is working in this folder"])
    assert inside.is_set() and stages.calls == [COMMAND[name] for name in ALL]  # the stages ran once


def test_participants_and_held_out_replace_the_recipes_cohort(tmp_path, stages, capsys):
    assert cli.main(["run", "--quick", "--participants", "60", "--held-out", "5", "--out", str(tmp_path)]) == 0
    simulate = stages.argv["simulate"]
    assert _option(simulate, "--participants") == "60" and _option(simulate, "--held-out") == "5"
    assert _state(tmp_path / "quick")["settings"]["held_out"] == 5
    # the training lengths stay the recipe's
    assert _option(stages.argv["train"], "--max-steps") == "60"

    stages.calls = []
    assert cli.main(["run", "--quick", "--held-out", "20", "--out", str(tmp_path), "--name", "few"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == ["biomechgpt run: error: held_out 20: validation and test would take 40 of the 40 "
                                "participants and leave none to train on"]
    assert stages.calls == [] and not (tmp_path / "few").exists()
    with pytest.raises(UsageError, match="participants: expected a whole number of at least 1, got 0"):
        run_pipeline(tmp_path, "x", quick=True, participants=0)
    with pytest.raises(UsageError, match="held_out must be a positive integer, got 0"):
        run_pipeline(tmp_path, "x", quick=True, held_out=0)
    assert not (tmp_path / "x").exists()
