"""Unit tests of the chat page's logic: session state, the trial catalog, the plots and the served API.

The browser test is tests/test_chat_browser.py; these run without a browser and with a fake answerer, so they test
the page's own behaviour (what resets when, what is hidden, what a bad upload shows) and not the model's answers.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from biomechgpt.chat.catalog import ANY, TrialCatalog
from biomechgpt.chat.plots import (
    JOINT_PANELS,
    gait_cycle_curves,
    gait_cycle_starts,
    joint_angle_figure,
    stick_figure,
    stick_figure_svg,
)
from biomechgpt.chat.session import (
    SUGGESTED_QUESTIONS,
    TASK_ORDER,
    ChatSession,
    ModelAnswerer,
    format_answer,
)
from biomechgpt.processing.motion import CANONICAL_COORDINATES, CANONICAL_FRAME_RATE, Motion

_INDEX = {name: i for i, name in enumerate(CANONICAL_COORDINATES)}


def walking_motion(seconds: float = 4.0, cadence: float = 110.0, seed: int = 0, speed: float = 1.2) -> Motion:
    """A smooth gait-like canonical motion (sinusoidal joint angles, steady forward progression)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * CANONICAL_FRAME_RATE)
    t = np.arange(n) / CANONICAL_FRAME_RATE
    phase = 2 * np.pi * cadence / 120.0 * t
    values = np.zeros((n, len(CANONICAL_COORDINATES)), np.float32)
    for side, offset in (("r", 0.0), ("l", np.pi)):
        values[:, _INDEX[f"hip_flexion_{side}"]] = np.radians(10 + 25 * np.sin(phase + offset))
        values[:, _INDEX[f"knee_angle_{side}"]] = np.radians(30 + 30 * np.sin(phase + offset - 1.2))
        values[:, _INDEX[f"ankle_angle_{side}"]] = np.radians(5 * np.sin(phase + offset + 0.5))
        values[:, _INDEX[f"arm_flex_{side}"]] = np.radians(-20 * np.sin(phase + offset))
        values[:, _INDEX[f"elbow_flex_{side}"]] = np.radians(25.0)
    values[:, _INDEX["pelvis_tx"]] = speed * t
    values[:, _INDEX["pelvis_ty"]] = 0.93 + 0.02 * np.sin(2 * phase)
    values[:, _INDEX["pelvis_tilt"]] = np.radians(-5 + 2 * np.sin(2 * phase))
    values += rng.normal(0, 1e-3, values.shape).astype(np.float32)
    return Motion(list(CANONICAL_COORDINATES), values, CANONICAL_FRAME_RATE, meta={"seed": seed})


class FakeCohort:
    """The `Cohort` contract (ARCHITECTURE.md): `.participants`, `.trials`, `.motion(trial_id)`."""

    def __init__(self) -> None:
        self.participants = pd.DataFrame({
            "participant_id": ["p0", "p1", "p2"],
            "split": ["train", "validation", "test"],
            "diagnosis": ["healthy", "stroke", "parkinsons_disease"],
            "assistive_device": ["none", "cane", "walker"],
            "height_m": [1.70, 1.80, 1.60],
            "age": [30.0, 61.0, 72.0],
            "sex": ["female", "male", "male"],
        })
        self.trials = pd.DataFrame({
            "trial_id": ["t3", "t0", "t1", "t2"],
            "participant_id": ["p2", "p0", "p1", "p2"],
            "split": ["test", "train", "validation", "test"],
            "activity": ["walking", "walking", "walking", "running"],
            "n_frames": [120, 120, 120, 120],
            "duration_s": [4.0, 4.0, 4.0, 4.0],
            "cadence_steps_per_min": [100.0, 110.0, 95.0, 160.0],
        })
        self.loads = 0

    def motion(self, trial_id: str) -> Motion:
        self.loads += 1
        return walking_motion(seed=int(trial_id[1:]))


class FakeAnswerer:
    """Counts prefix computations and questions; answers from the prefix so a stale prefix would show."""

    def __init__(self) -> None:
        self.prepared = 0
        self.asked = 0

    def prepare(self, motion: Motion) -> tuple[str, int]:
        self.prepared += 1
        return ("prefix", int(motion.meta.get("seed", -1)))

    def answer_prepared(self, prefix, question: str) -> dict:
        self.asked += 1
        if "cadence" in question.lower():
            return {"question": question, "task": "cadence", "answer": "About 110 steps per minute.",
                    "value": 110.0, "unit": "steps/min", "confidence": None}
        return {"question": question, "task": "activity", "answer": f"Walking (motion {prefix[1]}).",
                "label": "walking", "confidence": 0.87}


class PlainAnswerer:
    """Only `answer(motion, question)`: the minimal protocol."""

    def answer(self, motion: Motion, question: str) -> dict:
        return {"answer": f"{motion.n_frames} frames", "task": None}


# -- session ---------------------------------------------------------------------------------------------------------


def test_prefix_is_computed_once_per_motion_and_reset_on_change():
    session, answerer = ChatSession(), FakeAnswerer()
    session.select(walking_motion(seed=1), "t1")
    for question in ("What activity is this?", "And the cadence?", "Activity again?"):
        session.ask(answerer, question)
    assert answerer.prepared == 1 and answerer.asked == 3
    assert len(session.history) == 6 and session.history[0] == {"role": "user", "content": "What activity is this?"}
    assert "Walking (motion 1)" in session.history[1]["content"]

    assert session.select(walking_motion(seed=2), "t2") is True
    assert session.history == [] and session.answers == [] and session.prefix is None
    result = session.ask(answerer, "What activity is this?")
    assert answerer.prepared == 2 and result["answer"] == "Walking (motion 2)."


def test_reselecting_the_same_source_keeps_the_conversation():
    session, answerer = ChatSession(), FakeAnswerer()
    session.select(walking_motion(seed=1), "t1")
    session.ask(answerer, "What activity?")
    assert session.select(walking_motion(seed=1), "t1", {"split": "train"}) is False
    assert len(session.history) == 2 and answerer.prepared == 1 and session.info == {"split": "train"}


def test_plain_answerer_protocol_and_normalised_result():
    session = ChatSession()
    session.select(walking_motion(seconds=2.0), "upload:x.mot")
    result = session.ask(PlainAnswerer(), "  how   many\nframes? ")
    assert result["question"] == "how many frames?" and result["answer"] == "60 frames"
    assert set(result) >= {"question", "task", "answer", "label", "value", "unit", "confidence", "latency_s"}
    assert "task: not recognised" in session.history[-1]["content"]


@pytest.mark.parametrize(
    ("question", "selected", "message"),
    [("", True, "type a question"), ("   ", True, "type a question"), ("x" * 501, True, "the limit is 500"),
     ("What activity?", False, "no motion selected")],
)
def test_bad_questions_raise_one_line_errors(question, selected, message):
    session = ChatSession()
    if selected:
        session.select(walking_motion(), "t0")
    with pytest.raises(ValueError, match=message) as info:
        session.ask(FakeAnswerer(), question)
    assert "\n" not in str(info.value) and session.history == []


def test_format_answer_shows_confidence_or_says_why_not():
    closed = format_answer({"answer": "Walking.", "task": "activity", "confidence": 0.873})
    assert closed.startswith("Walking.") and "confidence: 87%" in closed and "task: activity" in closed
    generated = format_answer({"answer": "110 steps/min", "task": "cadence", "confidence": None})
    assert "confidence: n/a" in generated
    assert format_answer({"answer": "", "task": None}).startswith("(no answer)")
    noted = format_answer({"answer": "About 9.8 s.", "task": "tug_time", "note": "Answered as a question about X."})
    assert noted.startswith("About 9.8 s.\n\nAnswered as a question about X.\n\n*task: tug time")  # words
    warned = format_answer({"answer": "Walking.", "task": "activity", "warning": "This recording is unlike X."})
    assert warned.startswith("Walking.\n\n⚠️ **This recording is unlike X.**\n\n*task: activity")


def test_suggested_questions_cover_every_task():
    assert set(SUGGESTED_QUESTIONS) == set(TASK_ORDER) and len(TASK_ORDER) == 12
    from biomechgpt.chat.app import suggested_questions

    assert suggested_questions() == [SUGGESTED_QUESTIONS[t] for t in TASK_ORDER]


def test_model_answerer_caches_codes_and_locks():
    class Processor:
        calls = 0

        def encode_motion(self, motion):
            Processor.calls += 1
            return np.arange(5)

    class Result:
        def __init__(self, motion, question):
            self.data = {"question": question, "task": "activity", "answer": f"codes {list(motion)}",
                         "confidence": 0.5}

        def to_dict(self):
            return self.data

    class Model:
        processor = Processor()

        def answer(self, motion, question, max_new_tokens):
            return Result(motion, question)

    session, answerer = ChatSession(), ModelAnswerer(Model())
    session.select(walking_motion(), "t0")
    session.ask(answerer, "What activity?")
    second = session.ask(answerer, "What activity now?")
    assert Processor.calls == 1 and second["answer"] == "codes [0, 1, 2, 3, 4]"


def test_a_model_that_reads_motion_frames_is_never_given_codes():
    """A corpus trial comes with codes, but a model with `config.reads_features` (motion_input continuous, the
    default) refuses codes: the page's prefix from codes is skipped and the session prepares the motion itself."""
    from types import SimpleNamespace

    class Model:
        def __init__(self, reads_features):
            self.config = SimpleNamespace(reads_features=reads_features)
            self.prefixes = []

        def encode_prefix(self, motion):
            if isinstance(motion, list) and self.config.reads_features:
                raise ValueError("motion: this model reads the motion itself; pass a Motion, not motion codes")
            self.prefixes.append("codes" if isinstance(motion, list) else "motion")
            return ("prefix", self.prefixes[-1])

        def answer(self, prefix, question, max_new_tokens):
            return {"question": question, "task": "activity", "answer": f"from {prefix[1]}", "confidence": 0.5}

    for reads_features, source in ((True, "motion"), (False, "codes")):
        answerer, session = ModelAnswerer(Model(reads_features)), ChatSession()
        session.select(walking_motion(), "t0")
        session.prefix = answerer.prefix_from_codes([1, 2, 3])  # what the page does for a corpus trial
        assert session.ask(answerer, "What activity?")["answer"] == f"from {source}"
        assert answerer.model.prefixes == [source]


# -- catalog ---------------------------------------------------------------------------------------------------------


def test_catalog_orders_filters_and_hides_test_labels():
    catalog = TrialCatalog(cohort=FakeCohort())
    options, total = catalog.filter()
    assert [value for _, value in options] == ["t0", "t1", "t2", "t3"] and total == 4  # train, validation, test
    test_labels = [label for label, value in options if value in ("t2", "t3")]
    assert all("walking" not in label and "running" not in label and "parkinson" not in label for label in test_labels)

    walking, _ = catalog.filter(activity="walking")
    assert [v for _, v in walking] == ["t0", "t1"]  # the hidden test trial t3 never matches a label filter
    walking_revealed, _ = catalog.filter(activity="walking", reveal=True)
    assert [v for _, v in walking_revealed] == ["t0", "t1", "t3"]
    assert [v for _, v in catalog.filter(split="test")[0]] == ["t2", "t3"]
    assert [v for _, v in catalog.filter(diagnosis="stroke")[0]] == ["t1"]
    assert catalog.choices("activity") == [ANY, "running", "walking"]
    revealed = dict((value, label) for label, value in catalog.filter(reveal=True)[0])
    assert revealed["t2"] == "t2 · test · running · parkinsons disease"  # words in the dropdown, not snake_case

    hidden = catalog.metadata("t2")
    assert "activity" not in hidden and "diagnosis" not in hidden and "cadence_steps_per_min" not in hidden
    assert hidden["split"] == "test" and "hidden" in hidden["labels"]
    shown = catalog.metadata("t2", reveal=True)
    assert shown["activity"] == "running" and shown["diagnosis"] == "parkinsons_disease"
    assert catalog.metadata("t0")["diagnosis"] == "healthy"
    with pytest.raises(KeyError, match="unknown trial"):
        catalog.metadata("nope")


def _corpus() -> pd.DataFrame:
    rows = []
    for trial, split, activity, codes in (("t0", "train", "walking", [1, 2, 3]), ("t9", "test", "squat", [4, 5])):
        rows.append({"id": f"{trial}-a", "participant_id": "p", "trial_id": trial, "split": split,
                     "task": "activity", "question": f"Which activity is shown in {trial}?", "answer": activity,
                     "target_label": activity, "target_value": None, "target_unit": None, "motion_codes": codes})
        rows.append({"id": f"{trial}-c", "participant_id": "p", "trial_id": trial, "split": split,
                     "task": "cadence", "question": "How many steps per minute?", "answer": "100 steps/min",
                     "target_label": None, "target_value": 100.0, "target_unit": "steps/min", "motion_codes": codes})
    return pd.DataFrame(rows)


def test_catalog_from_corpus_only_decodes_codes_and_uses_corpus_wording(tmp_path):
    (tmp_path / "data").mkdir()
    _corpus().to_parquet(tmp_path / "data" / "train-00000.parquet")
    decoded = []

    def decode(codes):
        decoded.append(codes)
        return walking_motion(seconds=len(codes))

    catalog = TrialCatalog.load(dataset_dir=tmp_path, decode_codes=decode)
    assert len(catalog) == 2 and catalog.codes("t9") == [4, 5]
    assert catalog.metadata("t0")["activity"] == "walking" and "activity" not in catalog.metadata("t9")
    assert catalog.metadata("t0")["cadence"] == "100 steps/min"
    assert catalog.motion("t9").n_frames == 60 and decoded == [[4, 5]]
    assert catalog.questions["activity"] == "Which activity is shown in t0?"  # train-split wording first
    from biomechgpt.chat.app import suggested_questions

    assert suggested_questions(catalog)[0] == "Which activity is shown in t0?"
    assert suggested_questions(catalog)[1] == SUGGESTED_QUESTIONS["impairment"]  # task missing from this corpus


def test_catalog_rejects_a_folder_without_shards(tmp_path):
    with pytest.raises(ValueError, match="no Parquet shards"):
        TrialCatalog.load(dataset_dir=tmp_path)


# -- plots -----------------------------------------------------------------------------------------------------------


def test_stick_figure_kinematics():
    motion = walking_motion()
    figure = stick_figure(motion, height_m=1.7)
    knee_r, hip = figure.points["knee_r"], figure.points["hip"]
    thigh = np.linalg.norm(knee_r - hip, axis=1)
    np.testing.assert_allclose(thigh, 0.245 * 1.7, rtol=1e-6)  # segment lengths stay rigid
    # Hip flexion swings the knee forward: the knee is ahead of the hip exactly when thigh flexion (+ tilt) > 0.
    angle = motion.column("hip_flexion_r") + motion.column("pelvis_tilt")
    assert np.array_equal(knee_r[:, 0] > hip[:, 0], angle > 0)
    feet = np.minimum.reduce([figure.points[f"{j}_{s}"][:, 1] for j in ("ankle", "toe") for s in ("r", "l")])
    assert np.percentile(feet, 5) == pytest.approx(0.0, abs=1e-6)  # on the ground, not floating
    assert figure.points["head"][:, 1].min() > figure.points["shoulder"][:, 1].max() - 0.05  # upright
    np.testing.assert_allclose(figure.progression, motion.column("pelvis_tx"))


def test_stick_figure_without_pelvis_height_grounds_every_frame():
    motion = walking_motion()
    motion.mask[_INDEX["pelvis_ty"]] = False
    figure = stick_figure(motion)
    feet = np.minimum.reduce([figure.points[f"{j}_{s}"][:, 1] for j in ("ankle", "toe") for s in ("r", "l")])
    np.testing.assert_allclose(feet, 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="height_m"):
        stick_figure(motion, height_m=7.0)


def test_stick_figure_svg_is_valid_animated_and_bounded():
    svg = stick_figure_svg(walking_motion(seconds=4.0), max_fps=15)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    limbs = root.findall(f"{ns}polyline")
    assert {p.get("class") for p in limbs} == {"arm-left", "leg-left", "trunk", "leg-right", "arm-right"}
    animate = limbs[0].find(f"{ns}animate")
    frames = animate.get("values").split(";")
    assert len(frames) == 60 and animate.get("dur") == "4.000s"  # 4 s at 15 fps, real-time playback
    assert len(set(frames)) > 30  # it moves
    long_svg = stick_figure_svg(walking_motion(seconds=90.0), max_seconds=30.0)
    assert long_svg.count(";") < 6 * 15 * 30 + 10 and len(long_svg) < 400_000
    still = stick_figure_svg(walking_motion(seconds=0.04))
    assert "<animate " not in still and ET.fromstring(still) is not None


def test_stick_figure_names_which_colour_is_which_side():
    root = ET.fromstring(stick_figure_svg(walking_motion(seconds=2.0)))
    ns = "{http://www.w3.org/2000/svg}"
    legend = {t.text: t.get("fill") for t in root.iter(f"{ns}text")}
    right = next(p.get("stroke") for p in root.iter(f"{ns}polyline") if p.get("class") == "leg-right")
    left = next(p.get("stroke") for p in root.iter(f"{ns}polyline") if p.get("class") == "leg-left")
    assert legend == {"right side (red)": right, "left side (blue)": left} and right != left
    assert "right side red, left side blue" in root.get("aria-label")


def squat_motion(seconds: float = 8.0) -> Motion:
    """One slow knee bend: no stride period."""
    n = int(seconds * CANONICAL_FRAME_RATE)
    bend = np.radians(45 * (1 - np.cos(2 * np.pi * np.arange(n) / n)))
    values = np.zeros((n, len(CANONICAL_COORDINATES)), np.float32)
    for side in ("r", "l"):
        values[:, _INDEX[f"hip_flexion_{side}"]] = bend
        values[:, _INDEX[f"knee_angle_{side}"]] = 2 * bend
    return Motion(list(CANONICAL_COORDINATES), values, CANONICAL_FRAME_RATE)


def test_gait_cycles_start_at_hip_flexion_peaks_one_stride_apart():
    motion = walking_motion(seconds=21.0, cadence=110.0)
    stride = 120.0 * CANONICAL_FRAME_RATE / 110.0  # frames
    for side, shift in (("r", 0.0), ("l", 0.5)):
        starts = gait_cycle_starts(motion, side)
        assert len(starts) >= 18
        np.testing.assert_allclose(np.diff(starts), stride, atol=1.01)
        # hip flexion 10 + 25 sin(phase + offset) peaks a quarter stride in (the left leg half a stride later)
        phase = ((starts - 0.25 * stride) / stride - shift) % 1.0
        assert np.all(np.minimum(phase, 1 - phase) < 0.05), phase
    knee = np.degrees(gait_cycle_curves(motion, "knee_angle_r", gait_cycle_starts(motion, "r")))
    assert knee.shape[1] == 101 and knee.shape[0] >= 17
    assert knee.std(axis=0).max() < 3.0  # the same cycle every time: a tight band
    assert 55 < knee.mean(axis=0).max() < 65 and -5 < knee.mean(axis=0).min() < 5
    assert len(gait_cycle_starts(squat_motion())) == 0  # no stride period
    assert len(gait_cycle_starts(walking_motion(seconds=2.0))) == 0  # too short to find one
    with pytest.raises(ValueError, match="side"):
        gait_cycle_starts(motion, "x")


def test_joint_angle_figure_per_gait_cycle_or_over_time():
    long_walk = walking_motion(seconds=21.0)
    figure = joint_angle_figure(long_walk, title="S01DE504.mot", view="cycle")
    assert figure.axes[3].get_xlabel() == "gait cycle (%)"
    assert figure.get_suptitle().startswith("S01DE504.mot · mean ± SD over ")
    knee = figure.axes[1]
    assert len(knee.get_lines()) == 2 and len(knee.get_lines()[0].get_xdata()) == 101  # one mean curve per side
    assert len(knee.collections) == 2  # and its ± SD band
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["right side (red)", "left side (blue)"]

    squat = joint_angle_figure(squat_motion(), title="trial t9", view="cycle")
    assert squat.axes[3].get_xlabel() == "time (s)"
    assert "no repeating gait cycle found" in squat.get_suptitle()
    assert joint_angle_figure(long_walk, view="time").axes[3].get_xlabel() == "time (s)"
    with pytest.raises(ValueError, match="view must be one of"):
        joint_angle_figure(long_walk, view="spaghetti")


def test_joint_angle_figure_panels_and_missing_coordinates():
    motion = walking_motion()
    for name in ("arm_flex_r", "arm_flex_l", "lumbar_extension"):
        motion.mask[_INDEX[name]] = False
    figure = joint_angle_figure(motion, title="t0")
    axes = figure.axes
    assert [a.get_title() for a in axes] == [panel for panel, _, _ in JOINT_PANELS]
    knee = axes[1].get_lines()[0].get_ydata()
    np.testing.assert_allclose(knee, np.degrees(motion.column("knee_angle_r")), rtol=1e-5)
    assert len(axes[0].get_lines()) == 2 and len(axes[5].get_lines()) == 0
    assert "not recorded" in [t.get_text() for t in axes[5].texts]


# -- the served app (gradio_client over loopback) ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    pytest.importorskip("gradio", reason="the chat extra (gradio) is not installed")
    from gradio_client import Client

    from biomechgpt.chat.app import build_app, launch_app

    answerer, cohort = FakeAnswerer(), FakeCohort()
    demo = build_app(None, answerer=answerer, catalog=TrialCatalog(cohort=cohort), max_upload_mb=0.05)
    port = free_port()
    launch_app(demo, port=port, block=False, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False), answerer, port
    finally:
        demo.close()


def test_served_select_then_ask_keeps_the_prefix_and_resets_on_change(served):
    client, answerer, _ = served
    from gradio_client import Client

    client = Client(client.src, verbose=False)  # a fresh session
    status, metadata, svg, _plot, chat = client.predict("t0", False, api_name="/select_trial")
    assert "t0" in status and "| diagnosis | healthy |" in metadata and svg.startswith("<svg") and chat == []
    before = answerer.prepared
    for question in ("What activity is this?", "What is the cadence?"):
        chat, box, status = client.predict(question, api_name="/ask")
    assert answerer.prepared == before + 1 and len(chat) == 4 and box == ""
    assert "confidence: n/a" in chat[-1]["content"][0]["text"] and "confidence: 87%" in chat[1]["content"][0]["text"]
    status, _, _, _, chat = client.predict("t1", False, api_name="/select_trial")
    assert chat == [] and "New conversation" in status


def test_served_hides_test_labels_unless_revealed(served):
    client, _, _ = served
    _, metadata, _, _, _ = client.predict("t2", False, api_name="/select_trial")
    assert "running" not in metadata and "parkinsons" not in metadata and "hidden" in metadata
    _, metadata, _, _, _ = client.predict("t3", True, api_name="/select_trial")
    assert "| diagnosis | parkinsons disease |" in metadata


def test_served_bad_question_and_no_motion_show_messages(served):
    client, _, _ = served
    from gradio_client import Client

    fresh = Client(client.src, verbose=False)
    chat, box, status = fresh.predict("What activity?", api_name="/ask")
    assert chat == [] and box == "What activity?" and "no motion selected" in status


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("garbage.mot", bytes(range(256)) * 4, "binary file"),
        ("notes.txt", b"hello", "unsupported file type '.txt'"),
        ("short.csv", b"time,knee_angle_r\n0,10\n0.01,11\n", "short"),
        ("nan.csv", b"time,knee_angle_r\n" + b"".join(b"%g,nan\n" % (i / 30) for i in range(90)), "NaN"),
    ],
)
def test_served_bad_uploads_show_a_message_and_the_server_keeps_serving(served, tmp_path, name, content, message):
    client, _, _ = served
    from gradio_client import handle_file

    path = tmp_path / name
    path.write_bytes(content)
    status, *_ = client.predict(handle_file(str(path)), api_name="/upload")
    assert status.startswith("⚠️ Could not use this upload") and re.search(message, status, re.IGNORECASE), status
    assert "\n" not in status
    status, *_ = client.predict("t0", False, api_name="/select_trial")  # still serving
    assert "t0" in status


def test_served_bad_upload_clears_the_motion_and_names_no_server_path(served, tmp_path):
    """After a bad upload nothing is answered about the motion selected before it: the user meant the new file."""
    client, _, _ = served
    from gradio_client import Client, handle_file

    fresh = Client(client.src, verbose=False)
    fresh.predict("t0", False, api_name="/select_trial")
    fresh.predict("What activity?", api_name="/ask")
    path = tmp_path / "bad.mot"
    path.write_bytes(bytes(range(256)) * 4)
    status, metadata, svg, plot, chat = fresh.predict(handle_file(str(path)), api_name="/upload")
    assert status.startswith("⚠️ Could not use this upload: bad.mot: binary file") and "trial t0" in status, status
    assert "/" not in status.split("upload:", 1)[1] and "\\" not in status  # no server temporary path
    assert metadata == "" and svg == "" and plot is None and chat == []
    chat, box, status = fresh.predict("What is the cadence?", api_name="/ask")
    assert chat == [] and "no motion selected" in status and box == "What is the cadence?"


def test_page_names_recordings_and_fields_in_words():
    from biomechgpt.chat.app import _metadata_markdown, display_name, source_name

    assert source_name("upload:S01DE504.mot:1428665") == "S01DE504.mot"
    assert source_name("upload:a:b.mot:12") == "a:b.mot" and source_name("t001") == "trial t001"
    assert display_name("cadence_steps_per_min") == "cadence (steps/min)"
    assert display_name("walking_speed_m_s") == "walking speed (m/s)"
    assert display_name("participant_id") == "participant ID" and display_name("n_frames") == "number of frames"
    assert display_name("tug_time_s") == "TUG time (s)" and display_name("s") == "s"
    table = _metadata_markdown({"trial_id": "p_01_walk", "diagnosis": "parkinsons_disease", "duration_s": 4.0})
    assert "| trial ID | p_01_walk |" in table and "| diagnosis | parkinsons disease |" in table
    assert "| duration (s) | 4 |" in table


def test_filter_dropdowns_show_words_not_snake_case():
    pytest.importorskip("gradio", reason="the chat extra (gradio) is not installed")
    from biomechgpt.chat.app import build_app

    demo = build_app(None, answerer=FakeAnswerer(), catalog=TrialCatalog(cohort=FakeCohort()))
    dropdown = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "filter-diagnosis")
    assert ("parkinsons disease", "parkinsons_disease") in [tuple(c) for c in dropdown.choices]
    assert not any("_" in shown for shown, _ in dropdown.choices)


def test_served_upload_over_the_limit_is_refused(served, tmp_path):
    client, _, port = served
    import httpx

    big = tmp_path / "big.csv"
    big.write_bytes(b"time,knee_angle_r\n" + b"0.0,1.0\n" * 20_000)  # ~160 kB > 0.05 MB
    response = httpx.post(f"http://127.0.0.1:{port}/gradio_api/upload",
                          files={"files": ("big.csv", big.read_bytes())}, timeout=30)
    assert response.status_code == 413
    assert client.predict("t0", False, api_name="/select_trial")[0].startswith("Selected")


def test_served_good_upload_resets_the_conversation(served, tmp_path):
    client, answerer, _ = served
    from gradio_client import Client, handle_file

    from biomechgpt.motion_io import save_motion

    fresh = Client(client.src, verbose=False)
    fresh.predict("t0", False, api_name="/select_trial")
    fresh.predict("What activity?", api_name="/ask")
    path = save_motion(walking_motion(seconds=3.0, seed=5), tmp_path / "walk.mot")
    status, metadata, svg, _, chat = fresh.predict(handle_file(str(path)), api_name="/upload")
    assert "Loaded upload **walk.mot**" in status and chat == []
    assert "<animate" in svg and "| frames | 90 |" in metadata
    chat, _, _ = fresh.predict("What activity?", api_name="/ask")
    assert len(chat) == 2


def test_served_curves_switch_between_gait_cycles_and_time(served):
    client, _, _ = served
    from gradio_client import Client

    fresh = Client(client.src, verbose=False)
    assert fresh.predict("time", api_name="/curve_view")[0] is None  # no motion yet: nothing to draw
    *_, plot, _ = fresh.predict("t0", False, api_name="/select_trial")
    assert plot is not None
    plot, status = fresh.predict("time", api_name="/curve_view")
    assert plot is not None


def test_suggested_question_click_asks_it():
    """The chips ask their question (they used to only fill the box)."""
    pytest.importorskip("gradio", reason="the chat extra (gradio) is not installed")
    from biomechgpt.chat.app import build_app

    answerer = FakeAnswerer()
    demo = build_app(None, answerer=answerer, catalog=TrialCatalog(cohort=FakeCohort()))
    chips = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "suggestions")
    assert [sample[0] for sample in chips.samples][0] == SUGGESTED_QUESTIONS["activity"]
    click = next(d for d in demo.fns.values() if any(t[0] == chips._id and t[1] == "click" for t in d.targets))
    session = ChatSession()
    session.select(walking_motion(seed=3), "t3")
    history, box, session, status = click.fn(0, session)
    assert history[0]["content"] == SUGGESTED_QUESTIONS["activity"] and "Walking (motion 3)" in history[1]["content"]
    assert box == "" and status.startswith("Answered")
    history, _, _, status = click.fn(99, session)
    assert len(history) == 2 and "no question number 99" in status
