from __future__ import annotations

import json

import pytest

from biomechgpt import cli
from biomechgpt.pipeline import STAGES, format_results_table, run_pipeline


def test_help_lists_every_available_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in cli.available_commands():
        assert name.replace("_", "-") in out


@pytest.mark.parametrize("name", cli.available_commands())
def test_each_command_has_useful_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name.replace("_", "-"), "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: biomechgpt" in out and len(out.splitlines()) >= 4


@pytest.mark.parametrize("argv", [["--no-such-flag"], ["no-such-command"], ["run", "--seed", "abc"]])
def test_bad_arguments_give_one_line_and_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err


def test_run_refuses_to_overwrite_a_run_folder(tmp_path, capsys):
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "keep.txt").write_text("results")
    assert cli.main(["run", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "exists" in err
    assert (tmp_path / "default" / "keep.txt").read_text() == "results"


def test_run_rejects_unknown_stage(tmp_path, capsys):
    assert cli.main(["run", "--out", str(tmp_path), "--stages", "simulate,dance"]) == 2
    assert "dance" in capsys.readouterr().err


def test_run_reports_stages_that_are_not_installed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("biomechgpt.pipeline.available_commands", lambda: [])
    run_dir = run_pipeline(tmp_path, "empty")
    out = capsys.readouterr().out
    assert "Not run" in out and all(stage.name in out for stage in STAGES)
    timings = json.loads((run_dir / "timings.json").read_text())
    assert timings["stages"] == {} and "total_wall_s" in timings


def test_results_table_shows_ours_and_baseline():
    table = format_results_table(
        {
            "tasks": {
                "activity": {"n": 10, "biomechgpt": {"accuracy": 0.9, "macro_f1": 0.8}, "baseline": {"macro_f1": 0.7}},
                "cadence": {"n": 5, "biomechgpt": {"mae": 2.0, "pearson_r": 0.95}, "baseline": {}},
            }
        }
    )
    lines = table.splitlines()
    assert "activity" in lines[1] and "macro_f1" in lines[1] and "0.800" in lines[1] and "0.700" in lines[1]
    assert "cadence" in lines[2] and "pearson_r" in lines[2] and lines[2].rstrip().endswith("-")


def test_value_errors_from_a_stage_are_one_line_unless_debugging(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ValueError(f"{tmp_path}/checkpoints: this checkpoint was trained with other settings")

    monkeypatch.setattr("biomechgpt.pipeline.run_pipeline", broken)
    assert cli.main(["run", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"biomechgpt run: error: {tmp_path}/checkpoints: this checkpoint was trained with "
                                "other settings"]
    monkeypatch.setenv("BIOMECHGPT_DEBUG", "1")
    with pytest.raises(ValueError, match="other settings"):
        cli.main(["run", "--out", str(tmp_path)])
