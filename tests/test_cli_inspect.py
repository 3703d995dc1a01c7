"""`biomechgpt inspect`: the summary it prints, and one line on stderr with exit status 2 for every bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _motion_files import BAD_CASES, gait_columns, write_mot

from biomechgpt.cli import main


def test_inspect_prints_summary(reference_motion_dir, capsys):
    assert main(["inspect", str(reference_motion_dir / "normal.mot")]) == 0
    out = capsys.readouterr().out
    assert "1.020 s" in out
    assert "50 Hz source -> 30 Hz canonical" in out
    assert "51 source -> 31 canonical" in out
    assert "degrees (header)" in out
    assert "flexion negative (gait2392 family) -> converted to flexion positive (detected)" in out
    found = next(line for line in out.splitlines() if line.startswith("coordinates found"))
    missing = next(line for line in out.splitlines() if line.startswith("coordinates missing"))
    assert "17" in found and "pelvis_ty" in found
    assert "16" in missing and "pelvis_tx" in missing and "pelvis_tz" in missing


def test_inspect_running_reports_ignored_columns(reference_motion_dir, capsys):
    assert main(["inspect", str(reference_motion_dir / "subject02_running_ik.mot")]) == 0
    out = capsys.readouterr().out
    assert "33  (all canonical coordinates)" in out
    assert "4  (wrist_flex_r, wrist_dev_r, wrist_flex_l, wrist_dev_l)" in out
    assert "60 Hz source -> 30 Hz canonical" in out and "599 source -> 300 canonical" in out


def test_inspect_json(tmp_path, capsys):
    t, cols = gait_columns(100.0, 2.0, degrees=False)
    cols["knee_angle_r_beta"] = cols["knee_angle_r"]
    path = write_mot(tmp_path / "rajagopal.mot", t, cols, in_degrees="no")
    assert main(["inspect", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["source_frame_rate"] == 100.0 and summary["frame_rate"] == 30.0
    assert summary["n_frames"] == 60 and summary["duration_s"] == pytest.approx(2.0)
    assert summary["units"] == "radians" and summary["knee_convention"] == "positive"
    assert summary["columns_ignored"] == ["knee_angle_r_beta"]
    assert "pelvis_tz" in summary["coordinates_missing"]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_inspect_bad_input_exits_2_with_one_line(tmp_path, capsys, case):
    case_id, build, fragment, kwargs = case
    path = build(tmp_path / f"{case_id}.mot") if case_id == "too_large" else build(tmp_path)
    argv = ["inspect", str(path)]
    if "max_bytes" in kwargs:
        argv += ["--max-mb", str(kwargs["max_bytes"] / 1e6)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"biomechgpt inspect: error: {path}: ")
    assert fragment in lines[0]


def test_inspect_help_and_missing_argument(capsys):
    with pytest.raises(SystemExit) as info:
        main(["inspect", "--help"])
    assert info.value.code == 0 and "knee convention" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as info:
        main(["inspect"])
    assert info.value.code == 2 and len(capsys.readouterr().err.splitlines()) == 1
    assert main(["inspect", "--max-mb", "-1", "x.mot"]) == 2
    assert capsys.readouterr().err.strip() == "biomechgpt inspect: error: --max-mb must be positive, got -1.0"


def test_installed_script_exit_status(tmp_path):
    # one run only: the script imports the whole package (torch included), several seconds on 2 shared cores
    script = shutil.which("biomechgpt", path=str(Path(sys.executable).parent)) or shutil.which("biomechgpt")
    if script is None:
        pytest.skip("the biomechgpt script is not installed in this environment")
    bad = tmp_path / "bad.mot"
    bad.write_text("trial\nendheader\ntime\tknee_angle_r\n0\t1\n0.1\tx\n")
    result = subprocess.run([script, "inspect", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"biomechgpt inspect: error: {bad}: non-numeric value 'x' at line 5, column 'knee_angle_r'"
    ]
