"""The chat page with a real BiomechGPT model: a tiny Llama extended with motion tokens, its processor (text
tokenizer, task metadata, MotionTokenizer), saved to a folder and loaded back the way `biomechgpt chat` loads one.

Its weights are untrained (training even a tiny model takes minutes on these 2 cores; the model's own tests cover
learning), so these tests check what the page does with real answers, not whether the answers are right: routing,
confidence, the per-session prefix cache, motion codes decoded for display, the command serving it. The folder is
built once per module (tests/test_chat_browser.py uses it too).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_chat import free_port

ACTIVITY_QUESTION = "What activity is the person performing?"


def build_real_model(base: Path) -> tuple[Path, Path]:
    """(model folder, QA corpus folder) under `base`, built on first use."""
    model_dir, corpus_dir = base / "model", base / "corpus"
    if (model_dir / "config.json").is_file():
        return model_dir, corpus_dir
    pytest.importorskip("transformers")
    from test_train_helpers import make_corpus, make_motion_tokenizer, make_tiny_model_and_processor

    make_corpus(corpus_dir, n_trials=24)
    model, processor = make_tiny_model_and_processor(seed=0)
    processor.motion_tokenizer = make_motion_tokenizer(seed=0)
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    return model_dir, corpus_dir


@pytest.fixture(scope="module")
def real_model(tmp_path_factory):
    return build_real_model(tmp_path_factory.getbasetemp() / "chat-real-model")


@pytest.fixture(scope="module")
def answerer(real_model):
    from biomechgpt.chat.session import ModelAnswerer

    return ModelAnswerer.from_pretrained(str(real_model[0]))


@pytest.fixture(scope="module")
def catalog(real_model):
    from biomechgpt.chat.app import _code_decoder
    from biomechgpt.chat.catalog import TrialCatalog

    return TrialCatalog.load(dataset_dir=real_model[1], decode_codes=_code_decoder(real_model[0]))


def test_real_model_answers_corpus_trials_with_confidence(answerer, catalog):
    from biomechgpt.chat.session import ChatSession

    session = ChatSession()
    for trial_id in ("t000", "t001", "t018", "t019"):  # train and validation trials, walking and running
        session.select(catalog.motion(trial_id), trial_id, catalog.metadata(trial_id))
        session.prefix = answerer.prefix_from_codes(catalog.codes(trial_id))
        result = session.ask(answerer, ACTIVITY_QUESTION)
        assert result["task"] == "activity" and result["label"] in ("walking", "running")
        assert result["answer"] == f"This trial shows {result['label']}."  # the task's sentence, plainest phrase
        assert result["model_text"] == result["label"].capitalize() + "."  # the model's own sentence
        assert 0.5 <= result["confidence"] <= 1.0  # the larger of two candidates' probabilities
        assert f"confidence: {100 * result['confidence']:.0f}%" in session.history[-1]["content"]
        cadence = session.ask(answerer, "What is the cadence?")  # generated: no confidence, and the page says so
        assert cadence["task"] == "cadence" and cadence["confidence"] is None
        assert "confidence: n/a" in session.history[-1]["content"]
    assert catalog.motion("t000").n_frames == 12 * 4  # decoded from 12 codes, 4 frames per code


def test_each_session_keeps_its_own_prefix_cache(answerer, catalog):
    """Two sessions asking in turn about different motions run each prefix once, not once per question."""
    from biomechgpt.chat.session import ChatSession

    model = answerer.model
    start_id = model.config.motion_start_token_id
    prefix_runs = []  # input rows holding `<motion>`: only a prefix computation feeds one to the model

    def count(module, args):
        prefix_runs.extend([1] * int((args[0] == start_id).any(-1).sum()))

    handle = model.get_input_embeddings().register_forward_pre_hook(count)
    try:
        sessions = {}
        for trial_id in ("t000", "t001"):
            sessions[trial_id] = ChatSession()
            sessions[trial_id].select(catalog.motion(trial_id), trial_id)
            # as the page does for a corpus trial: the prefix from the codes the model was trained on
            sessions[trial_id].prefix = answerer.prefix_from_codes(catalog.codes(trial_id))
        answers = {t: [] for t in sessions}
        for _ in range(3):
            for trial_id, session in sessions.items():
                answers[trial_id].append(session.ask(answerer, ACTIVITY_QUESTION))
                session.ask(answerer, "What is the cadence?")  # generation reuses the same prefix
        assert len(prefix_runs) == 2  # one per session, though the sessions alternated
        kept = sessions["t000"].prefix
        assert kept.input_ids != sessions["t001"].prefix.input_ids
        sessions["t000"].select(catalog.motion("t018"), "t018")  # a new motion: new conversation, prefix dropped
        assert sessions["t000"].prefix is None and sessions["t000"].history == []
        for _ in range(2):  # the session computes the new motion's prefix itself (MotionTokenizer, then the model)
            sessions["t000"].ask(answerer, ACTIVITY_QUESTION)
        assert len(prefix_runs) == 3 and sessions["t000"].prefix_builds == 1 and sessions["t000"].prefix is not kept
    finally:
        handle.remove()
    for results in answers.values():
        assert len({(r["label"], round(r["confidence"], 6)) for r in results}) == 1  # cached == first answer
    fresh = model.answer(catalog.codes("t001"), ACTIVITY_QUESTION)  # a plain call runs its own prefix
    assert (fresh.label, round(fresh.confidence, 5)) == (answers["t001"][0]["label"],
                                                        round(answers["t001"][0]["confidence"], 5))


def _ask_all(answerer, catalog, trial_id: str, from_codes: bool, questions: list[str]) -> list[dict]:
    """One session's conversation: select the trial, ask every question; the answers without their latency."""
    from biomechgpt.chat.session import ChatSession

    session = ChatSession()
    session.select(catalog.motion(trial_id), trial_id)
    if from_codes:  # as the page does for a corpus trial; otherwise the session runs the motion's prefix itself
        session.prefix = answerer.prefix_from_codes(catalog.codes(trial_id))
    return [{k: v for k, v in session.ask(answerer, q).items() if k != "latency_s"} for q in questions]


def test_concurrent_sessions_get_the_answers_they_get_alone(answerer, catalog, monkeypatch):
    """Eight sessions ask through one `ModelAnswerer` from eight threads at once (what Gradio's workers do with a
    concurrency limit above 1): each gets exactly the answers it gets alone, nothing raises, and the model runs one
    call at a time (the answerer's lock: one forward pass already uses every core)."""
    import threading

    # inside: thread -> depth of its model calls (answer calls answer_batch)
    model, inside, most = answerer.model, {}, [0]
    count_lock = threading.Lock()

    def counted(method):
        def call(*args, **kwargs):
            me = threading.get_ident()
            with count_lock:
                inside[me] = inside.get(me, 0) + 1
                most[0] = max(most[0], len(inside))
            try:
                return method(*args, **kwargs)
            finally:
                with count_lock:
                    inside[me] -= 1
                    if not inside[me]:
                        del inside[me]

        return call

    for name in ("answer", "answer_batch", "encode_prefix"):
        monkeypatch.setattr(model, name, counted(getattr(model, name)))

    questions = [ACTIVITY_QUESTION, "What is the cadence?", "Describe this trial.", ACTIVITY_QUESTION]
    plan = [(trial_id, k % 2 == 0) for k, trial_id in enumerate(("t000", "t001", "t002", "t003", "t018", "t019",
                                                                   "t020", "t021"))]
    alone = [_ask_all(answerer, catalog, trial_id, from_codes, questions) for trial_id, from_codes in plan]
    assert len({str(a) for a in alone}) > 2  # the sessions' answers differ: a mix-up between them would show

    together: list[list[dict] | None] = [None] * len(plan)
    errors: list[str] = []
    barrier = threading.Barrier(len(plan))

    def session(k: int) -> None:
        try:
            barrier.wait()
            together[k] = _ask_all(answerer, catalog, *plan[k], questions)
        except Exception as err:  # every thread's failure is reported, none hides another)
            errors.append(f"{plan[k][0]}: {type(err).__name__}: {err}")

    for _ in range(2):
        threads = [threading.Thread(target=session, args=(k,)) for k in range(len(plan))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert errors == [] and not any(t.is_alive() for t in threads)
        for (trial_id, _), mine, theirs in zip(plan, alone, together, strict=True):
            assert theirs == mine, trial_id
    assert most[0] == 1  # one thread in the model at a time; without the lock all eight are at once


def test_chat_command_serves_the_real_model(real_model):
    """`biomechgpt chat` end to end in a subprocess: binds 127.0.0.1, answers over the HTTP API."""
    import subprocess
    import sys
    import time

    from gradio_client import Client

    model_dir, corpus_dir = real_model
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "biomechgpt.cli", "chat", "--model", str(model_dir), "--dataset", str(corpus_dir),
         "--port", str(port), "--max-upload-mb", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        client = None
        while client is None and time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"biomechgpt chat exited: {server.stdout.read()[-2000:]}")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:  # not listening yet
                time.sleep(0.5)
        assert client is not None, "server did not come up in 90 s"
        status, metadata, svg, _, chat = client.predict("t001", False, api_name="/select_trial")
        assert "t001" in status and "running" in metadata and svg.startswith("<svg")
        chat, _, status = client.predict(ACTIVITY_QUESTION, api_name="/ask")
        shown = chat[-1]["content"][0]["text"].split("\n")[0]
        assert shown in ("This trial shows walking.", "This trial shows running.") and "confidence" in status
    finally:
        server.terminate()
        server.wait(timeout=30)
    out = server.stdout.read()
    assert f"serving on http://127.0.0.1:{port}/" in out
    assert "Loading weights" not in out and "share=True" not in out, out  # no progress bars, no share hint


def test_the_page_and_the_commands_load_models_without_weight_bars(real_model, capfd):
    """transformers draws a "Loading weights" bar per model loaded; the page's server and the commands hide those
    bars (only those: other bars and warnings still show)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from biomechgpt.chat.session import ModelAnswerer
    from biomechgpt.commands import hide_weight_loading_bars

    was_enabled, previous = hf_logging.is_progress_bar_enabled(), hf_logging.set_tqdm_hook(None)
    hf_logging.enable_progress_bar()  # an earlier in-process command may have switched every bar off
    try:
        capfd.readouterr()
        AutoModelForCausalLM.from_pretrained(str(real_model[0]))
        assert "Loading weights" in capfd.readouterr().err  # what a user saw
        ModelAnswerer.from_pretrained(str(real_model[0]))
        assert "Loading weights" not in capfd.readouterr().err
        assert hf_logging.set_tqdm_hook(None) is None  # the page's hook was only there while loading

        hide_weight_loading_bars()
        AutoModelForCausalLM.from_pretrained(str(real_model[0]))
        assert "Loading weights" not in capfd.readouterr().err
        other = hf_logging.tqdm(range(3), desc="Downloading")
        assert not other.disable
        other.close()
    finally:
        hf_logging.set_tqdm_hook(previous)
        if not was_enabled:
            hf_logging.disable_progress_bar()


def test_chat_command_rejects_bad_arguments(tmp_path, capsys):
    from biomechgpt.cli import main

    assert main(["chat", "--model", str(tmp_path)]) == 2
    assert "not a model folder" in capsys.readouterr().err
    (tmp_path / "config.json").write_text("{}")
    assert main(["chat", "--model", str(tmp_path), "--port", "0"]) == 2
    assert "--port" in capsys.readouterr().err
    assert main(["chat", "--model", str(tmp_path), "--host", "my host"]) == 2
    assert "--host" in capsys.readouterr().err
    assert main(["chat", "--model", str(tmp_path), "--dataset", str(tmp_path / "nope")]) == 2
    assert "--dataset" in capsys.readouterr().err


def test_an_upload_unlike_the_training_data_is_warned_about_in_the_chat(tmp_path):
    from biomechgpt.chat.session import ChatSession, ModelAnswerer
    from test_modeling_biomechgpt import calibrated_motion_tokenizer, with_bent_elbows
    from test_train_helpers import make_motion, make_tiny_model_and_processor

    model, processor = make_tiny_model_and_processor(seed=0)
    processor.motion_tokenizer = calibrated_motion_tokenizer()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    answerer = ModelAnswerer.from_pretrained(str(tmp_path))
    session = ChatSession()
    session.select(make_motion(frames=120), "upload:usual.mot")
    assert session.ask(answerer, ACTIVITY_QUESTION)["warning"] is None
    assert "⚠️" not in session.history[-1]["content"]
    session.select(with_bent_elbows(make_motion(frames=120)), "upload:bent_elbows.mot")
    for question in (ACTIVITY_QUESTION, "What is the cadence?"):
        result = session.ask(answerer, question)
        assert result["warning"].startswith("This recording is unlike the training data in its arm angles")
        assert f"⚠️ **{result['warning']}**" in session.history[-1]["content"]
    assert session.prefix_builds == 2  # the check runs with the prefix, once per selected motion
