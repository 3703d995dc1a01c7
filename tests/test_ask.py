"""`biomechgpt ask`: answers about a motion file as text or JSON lines; bad input is a one-line error, exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
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
    assert [set(line) for line in lines] == [{"question", "task", "answer", "model_text", "label", "value", "unit",
                                              "confidence", "spread", "probabilities", "recordings", "note",
                                              "warning"}] * 2
    activity, cadence = lines
    assert activity["task"] == "activity" and activity["label"] in ("walking", "running")
    assert activity["answer"] == f"This trial shows {activity['label']}."  # not the model's "Walking."
    assert 0.5 <= activity["confidence"] <= 1.0 and activity["value"] is None
    assert cadence["task"] == "cadence" and cadence["label"] is None and cadence["confidence"] is None
    assert activity["spread"] is None and cadence["spread"] is None  # no value grid here: greedy decoding


def test_several_recordings_answer_a_participant_question(model_dir, motion_file, tmp_path, capsys):
    second = save_motion(make_motion(frames=90, seed=3), tmp_path / "second.mot")
    question = "What activity is the person performing?"
    capsys.readouterr()
    assert main(["ask", "--model", str(model_dir), "--motion", str(motion_file), "--motion", str(second), "--json",
                 "--question", question]) == 0
    joint = json.loads(capsys.readouterr().out)
    singles = []
    for path in (motion_file, second):
        assert main(["ask", "--model", str(model_dir), "--motion", str(path), "--json", "--question", question]) == 0
        singles.append(json.loads(capsys.readouterr().out))
    assert joint["recordings"] == 2
    assert joint["answer"] == f"This trial shows {joint['label']}." and joint["model_text"] in ("Walking.", "Running.")
    for label, probability in joint["probabilities"].items():
        assert probability == pytest.approx(sum(s["probabilities"][label] for s in singles) / 2, abs=1e-5)
    assert main(["ask", "--model", str(model_dir), "--motion", str(motion_file), "--motion", str(second),
                 "--question", "What is the cadence?"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a closed-set task" in err


def test_one_recording_or_several_route_a_question_alike(model_dir, motion_file, tmp_path, capsys):
    """One --motion (answer_questions) and several (model.answer_participant) route with the processor's one router:
    "busy with" names the activity only through its everyday wordings."""
    second = save_motion(make_motion(frames=90, seed=3), tmp_path / "second.mot")
    ask = ["ask", "--model", str(model_dir), "--json", "--question", "What is the patient busy with?"]
    capsys.readouterr()
    assert main([*ask, "--motion", str(motion_file)]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "activity"
    assert main([*ask, "--motion", str(motion_file), "--motion", str(second)]) == 0
    joint = json.loads(capsys.readouterr().out)
    assert joint["task"] == "activity" and joint["recordings"] == 2


def test_a_recording_unlike_the_training_data_is_warned_about_once(tmp_path, capsys):
    from test_modeling_biomechgpt import calibrated_motion_tokenizer, with_bent_elbows

    model, processor = make_tiny_model_and_processor()
    processor.motion_tokenizer = calibrated_motion_tokenizer()
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    usual = save_motion(make_motion(frames=120), tmp_path / "usual.mot")
    unusual = save_motion(with_bent_elbows(make_motion(frames=120)), tmp_path / "bent_elbows.mot")
    ask = ["ask", "--model", str(tmp_path / "model"), "--question", "What activity is the person performing?",
           "--question", "What is the cadence?", "--max-new-tokens", "3"]
    capsys.readouterr()
    assert main([*ask, "--motion", str(usual)]) == 0
    assert "Warning" not in capsys.readouterr().out
    assert main([*ask, "--motion", str(unusual)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Warning: This recording is unlike the training data in its arm angles")
    assert sum("unlike the training data" in line for line in lines) == 1 and lines[1].startswith("Q: ")
    assert main([*ask, "--motion", str(unusual), "--json"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["warning"] for a in answers] == [lines[0].removeprefix("Warning: ")] * 2
    # several recordings: the warning names the file it is about
    assert main(["ask", "--model", str(tmp_path / "model"), "--motion", str(usual), "--motion", str(unusual),
                 "--question", "What activity is the person performing?"]) == 0
    assert capsys.readouterr().out.startswith("Warning: bent_elbows.mot: This recording is unlike the training data")


def test_text_output_and_explicit_task(model_dir, motion_file, capsys):
    capsys.readouterr()
    status = main(["ask", "--model", str(model_dir), "--motion", str(motion_file), "--question", "Which one?",
                   "--task", "activity"])
    assert status == 0
    out = capsys.readouterr().out
    assert out.startswith("Q: Which one?\nA: ") and "[activity, confidence" in out


def test_an_off_topic_question_is_refused_with_what_the_model_can_answer(model_dir, motion_file, capsys):
    capsys.readouterr()
    assert main(["ask", "--model", str(model_dir), "--motion", str(motion_file), "--json",
                 "--question", "What is the weather today?", "--question", "Steps per minute?"]) == 0
    weather, cadence = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert weather["task"] is None and weather["value"] is None
    assert weather["answer"].startswith("I can only answer") and "cadence" in weather["answer"]
    assert cadence["task"] == "cadence"
    assert main(["ask", "--model", str(model_dir), "--motion", str(motion_file), "--question", "Who won?"]) == 0
    assert "[not a task of this model]" in capsys.readouterr().out


def _bad_input(case: str, model_dir: Path, motion_file: Path, tmp: Path) -> list[str]:
    """The `biomechgpt ask` arguments of one bad-input case; files it needs are made under `tmp`."""
    model, motion, questions, extra = model_dir, motion_file, ["What is the cadence?"], []
    if case == "model folder missing":
        model = tmp / "nowhere"
    elif case == "model is a MotionTokenizer folder":
        model = model_dir / "motion_tokenizer"
    elif case == "config.json is not JSON":
        model = tmp / "broken"
        model.mkdir()
        (model / "config.json").write_text("{not json")
    elif case in ("weights truncated", "no weights", "no MotionTokenizer"):
        model = tmp / "model"
        shutil.copytree(model_dir, model)
        if case == "weights truncated":
            (model / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes()[:1000])
        elif case == "no weights":
            (model / "model.safetensors").unlink()
        else:
            shutil.rmtree(model / "motion_tokenizer")
    elif case == "motion file missing":
        motion = tmp / "missing.mot"
    elif case == "motion is a folder":
        motion = tmp
    elif case == "text garbage":
        motion = tmp / "bad.mot"
        motion.write_text("this is not a motion file\n")
    elif case == "binary garbage":
        motion = tmp / "noise.mot"
        motion.write_bytes(np.random.default_rng(0).bytes(100_000))
    elif case == "empty file":
        motion = tmp / "empty.csv"
        motion.write_bytes(b"")
    elif case == "huge file":
        motion = tmp / "huge.mot"
        with open(motion, "wb") as handle:  # sparse: 300 MB on paper, nothing on disk
            handle.truncate(300 * 1024 * 1024)
    elif case == "over --max-mb":
        extra = ["--max-mb", "0.001"]
    elif case == "--max-mb not positive":
        extra = ["--max-mb", "0"]
    elif case == "empty question":
        questions = ["  "]
    elif case == "more --task than questions":
        extra = ["--task", "cadence", "--task", "activity"]
    elif case == "unknown task":
        extra = ["--task", "gait_speed"]
    elif case == "--max-new-tokens 0":
        extra = ["--max-new-tokens", "0"]
    return ["ask", "--model", str(model), "--motion", str(motion), *[a for q in questions for a in ("--question", q)],
            *extra]


BAD_INPUT = {
    "model folder missing": "nowhere: not a model folder (no config.json)",
    "model is a MotionTokenizer folder": "model_type is 'biomechgpt_motion_tokenizer', not 'biomechgpt' (a "
                                         "MotionTokenizer folder; pass the model folder)",
    "config.json is not JSON": "broken: config.json is not readable JSON",
    "weights truncated": "model: cannot load the model (SafetensorError: ",
    "no weights": "model: cannot load the model (OSError: ",
    "no MotionTokenizer": "model: the folder has no MotionTokenizer",
    "motion file missing": "missing.mot: file not found",
    "motion is a folder": "is a directory, not a motion file",
    "text garbage": "bad.mot: ",
    "binary garbage": "noise.mot: binary file",
    "empty file": "empty.csv: empty file",
    "huge file": "huge.mot: file is 314.6 MB, over the 209.7 MB limit (raise it with max_bytes=, or --max-mb",
    "over --max-mb": "over the 1.0 kB limit",
    "--max-mb not positive": "--max-mb: must be positive",
    "empty question": "--question: empty question",
    "more --task than questions": "--task: given 2 times for 1 questions",
    "unknown task": "--task gait_speed: not a task of this model",
    "--max-new-tokens 0": "--max-new-tokens: must be at least 1",
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_exit_2(model_dir, motion_file, tmp_path, capsys, case):
    argv = _bad_input(case, model_dir, motion_file, tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("biomechgpt ask: error: ") and BAD_INPUT[case] in err[0], err
    assert len(err[0]) < 400 and not captured.out  # one readable line, and no answer printed
