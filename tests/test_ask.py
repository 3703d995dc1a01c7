"""`biomechgpt ask`: answers about a motion file as text or JSON lines; bad input is a one-line error, exit 2."""

from __future__ import annotations

import json

import pytest

import biomechgpt  # noqa: F401
from biomechgpt.cli import main
from biomechgpt.motion_io import save_motion
from test_train_helpers import make_motion, make_motion_tokenizer, make_tiny_model_and_processor


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model, processor = make_tiny_model_and_processor()
    processor.motion_tokenizer = make_motion_tokenizer()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def motion_file(tmp_path_factory):
    return save_motion(make_motion(frames=120), tmp_path_factory.mktemp("motion") / "trial.mot")


def test_json_prints_one_object_per_question(model_dir, motion_file, capsys):
    capsys.readouterr()
    status = main(["ask", "--model", str(model_dir), "--motion", str(motion_file), "--json",
                   "--question", "What activity is the person performing?", "--question", "What is the cadence?",
                   "--max-new-tokens", "4"])
    assert status == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [set(line) for line in lines] == [{"question", "task", "answer", "label", "value", "unit",
                                              "confidence", "spread"}] * 2
    activity, cadence = lines
    assert activity["task"] == "activity" and activity["label"] in ("walking", "running")
    assert 0.5 <= activity["confidence"] <= 1.0 and activity["value"] is None
    assert cadence["task"] == "cadence" and cadence["label"] is None and cadence["confidence"] is None
    assert activity["spread"] is None and cadence["spread"] is None  # no value grid here: greedy decoding


def test_text_output_and_explicit_task(model_dir, motion_file, capsys):
    capsys.readouterr()
    status = main(["ask", "--model", str(model_dir), "--motion", str(motion_file), "--question", "Which one?",
                   "--task", "activity"])
    assert status == 0
    out = capsys.readouterr().out
    assert out.startswith("Q: Which one?\nA: ") and "[activity, confidence" in out


@pytest.mark.parametrize("case, message", [
    ("missing_model", "not a model folder"),
    ("bad_motion", "bad.mot"),
    ("empty_question", "--question: empty question"),
    ("unknown_task", "--task gait_speed: not a task of this model"),
])
def test_bad_input_is_one_line_exit_2(model_dir, motion_file, tmp_path, capsys, case, message):
    model, motion, question, extra = str(model_dir), str(motion_file), "What is the cadence?", []
    if case == "missing_model":
        model = str(tmp_path / "nowhere")
    elif case == "bad_motion":
        motion = tmp_path / "bad.mot"
        motion.write_text("this is not a motion file\n")
        motion = str(motion)
    elif case == "empty_question":
        question = "  "
    else:
        extra = ["--task", "gait_speed"]
    capsys.readouterr()
    assert main(["ask", "--model", model, "--motion", motion, "--question", question, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("biomechgpt ask: error:") and message in err[0]
