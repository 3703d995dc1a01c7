"""The Gradio page of `biomechgpt chat`: choose or upload a motion, look at it, ask the model about it.

Layout (paper, Figure 1): on the left the trial picker (filters by activity, diagnosis and split), an upload box, the
trial's metadata and a status line; on the right an animated stick figure and the joint-angle curves; below, the
conversation with per-answer confidence and one suggested question per task.

Each browser session owns a `ChatSession` (in `gr.State`): its selected motion, the motion prefix the answerer
computed once for it, and the conversation, which starts over whenever the motion changes. The model is loaded once
and shared by every session.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from biomechgpt.chat.catalog import ANY, TrialCatalog
from biomechgpt.chat.plots import joint_angle_figure, stick_figure_svg
from biomechgpt.chat.session import SUGGESTED_QUESTIONS, TASK_ORDER, ChatSession, ModelAnswerer
from biomechgpt.processing.motion import Motion, MotionInputError

__all__ = ["UPLOAD_SUFFIXES", "DEFAULT_MAX_UPLOAD_MB", "build_app", "launch_app", "suggested_questions"]

logger = logging.getLogger(__name__)

UPLOAD_SUFFIXES: tuple[str, ...] = (".mot", ".sto", ".csv", ".npz")
DEFAULT_MAX_UPLOAD_MB = 20.0
_SESSION_TTL_S = 3600  # a closed tab's session (motion, prefix, conversation) is freed after an hour
_NO_MOTION = "Choose a trial or upload a motion file (.mot, .sto, .csv, .npz) to start."


def suggested_questions(catalog: TrialCatalog | None = None) -> list[str]:
    """One question per task, in `TASK_ORDER`, in the corpus's own wording where the corpus has that task."""
    corpus = catalog.questions if catalog is not None else {}
    return [corpus.get(task) or SUGGESTED_QUESTIONS[task] for task in TASK_ORDER]


def _metadata_markdown(info: Mapping[str, Any]) -> str:
    if not info:
        return ""
    rows = ["| field | value |", "| --- | --- |"]
    for key, value in info.items():
        if isinstance(value, float):
            value = f"{value:.3g}"
        rows.append(f"| {key} | {str(value).replace('|', '/')} |")
    return "\n".join(rows)


def _motion_info(motion: Motion) -> dict[str, Any]:
    return {
        "frames": motion.n_frames,
        "duration_s": round(motion.duration, 2),
        "coordinates_recorded": f"{int(motion.mask.sum())} of {len(motion.coordinates)}",
    }


def build_app(
    model_dir: str | os.PathLike | None,
    dataset_dir: str | os.PathLike | None = None,
    cohort_dir: str | os.PathLike | None = None,
    *,
    answerer: Any = None,
    catalog: TrialCatalog | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    concurrency_limit: int = 1,
):
    """Build the chat page.

    Args:
        model_dir (`str` or `os.PathLike`): a model folder (`biomechgpt train --out DIR`). May be `None` when
            `answerer` is given.
        dataset_dir (`str` or `os.PathLike`, *optional*): a QA corpus folder whose trials can be chosen.
        cohort_dir (`str` or `os.PathLike`, *optional*): a cohort folder whose trials can be chosen.
        answerer (*optional*): an object with `answer(motion, question)` (or `prepare` + `answer_prepared`) used
            instead of loading `model_dir`; see `biomechgpt.chat.session.Answerer`.
        catalog ([`TrialCatalog`], *optional*): the selectable trials, instead of reading `dataset_dir` /
            `cohort_dir`.
        max_upload_mb (`float`, *optional*, defaults to 20): uploads over this size are refused (pass the same
            value to `launch_app`, which makes the server refuse them before they are stored).
        concurrency_limit (`int`, *optional*, defaults to 1): questions answered at the same time; more threads
            rarely help because one forward pass already uses every core.

    Returns:
        `gradio.Blocks`: the page; start it with `launch_app`.
    """
    import gradio as gr

    if not max_upload_mb > 0:
        raise ValueError(f"max_upload_mb must be positive, got {max_upload_mb}")
    if answerer is None:
        if model_dir is None:
            raise ValueError("build_app needs model_dir or answerer")
        if not Path(model_dir, "config.json").is_file():
            raise FileNotFoundError(f"{model_dir}: not a model folder (no config.json)")
        answerer = ModelAnswerer.from_pretrained(str(model_dir))
    if catalog is None and (dataset_dir is not None or cohort_dir is not None):
        catalog = TrialCatalog.load(cohort_dir=cohort_dir, dataset_dir=dataset_dir,
                                    decode_codes=_code_decoder(model_dir) if cohort_dir is None else None)
    max_upload_bytes = int(max_upload_mb * 1024 * 1024)
    questions = suggested_questions(catalog)

    # -- handlers ------------------------------------------------------------------------------------------------
    def show(session: ChatSession, status: str):
        """Every view output for the session's current motion."""
        if session.motion is None:
            return session, status, "", "", None, session.history
        info = _metadata_markdown(session.info)
        height = session.info.get("height_m")
        height = float(height) if isinstance(height, (int, float)) and 0.5 <= height <= 2.5 else 1.70
        svg = stick_figure_svg(session.motion, height_m=height)
        curves = joint_angle_figure(session.motion, title=_source_name(session.source))
        return session, status, info, svg, curves, session.history

    def update_trials(activity: str, diagnosis: str, split: str, reveal: bool):
        if catalog is None:
            return gr.update(), ""
        options, total = catalog.filter(activity, diagnosis, split, reveal=reveal)
        shown = f"{total} trials match" + (f"; the first {len(options)} are listed" if total > len(options) else "")
        if not reveal and (activity != ANY or diagnosis != ANY):
            shown += " (test-split trials are left out while their labels are hidden)"
        return gr.update(choices=options, value=None), shown

    def select_trial(trial_id: str | None, reveal: bool, session: ChatSession):
        if catalog is None or not trial_id:  # the filters cleared the dropdown: keep what is shown
            return tuple(gr.skip() for _ in range(6))
        try:
            motion = catalog.motion(trial_id)
            info = catalog.metadata(trial_id, reveal=reveal)
        except (KeyError, MotionInputError) as err:
            return show(session, f"⚠️ {err}")
        info.update({k: v for k, v in _motion_info(motion).items() if k not in info})
        changed = session.select(motion, trial_id, info)
        codes = catalog.codes(trial_id)
        if changed and codes is not None and hasattr(answerer, "prefix_from_codes"):
            session.prefix = answerer.prefix_from_codes(codes)  # the tokens the model saw for this trial
        return show(session, f"Selected trial **{trial_id}**." + (" New conversation." if changed else ""))

    def refresh_labels(reveal: bool, session: ChatSession):
        if catalog is not None and session.source in catalog:
            session.info = {**catalog.metadata(session.source, reveal=reveal), **_motion_info(session.motion)}
        return _metadata_markdown(session.info)

    def select_upload(path: str | None, session: ChatSession):
        if not path:
            return tuple(gr.skip() for _ in range(6))
        name = Path(path).name
        try:
            size = os.path.getsize(path)
            if size > max_upload_bytes:
                raise MotionInputError(f"{name}: file is {size / 1e6:.1f} MB, over the upload limit of "
                                       f"{max_upload_bytes / 1e6:.1f} MB")
            if Path(name).suffix.lower() not in UPLOAD_SUFFIXES:
                raise MotionInputError(f"{name}: unsupported file type {Path(name).suffix or '(no suffix)'!r}; "
                                       f"upload one of {', '.join(UPLOAD_SUFFIXES)}")
            from biomechgpt.motion_io import load_motion

            motion = load_motion(path, max_bytes=max_upload_bytes)
        except Exception as err:  # any reader failure on a user's file is the file's problem, not the server's
            if isinstance(err, MotionInputError):
                problem = _without_server_path(str(err), path)
            else:
                logger.exception("reading upload %s failed", name)
                problem = f"{name}: unreadable ({type(err).__name__})"
            # The user meant this file: answering about the previous motion now would answer about the wrong one.
            previous = session.source
            session.clear()
            dropped = f" {_source_name(previous)} is no longer selected;" if previous else ""
            return show(session, f"⚠️ Could not use this upload: {problem}.{dropped} choose a trial or upload "
                                 "another file.")
        info = {"source": name, **_motion_info(motion)}
        changed = session.select(motion, f"upload:{name}:{size}", info)
        return show(session, f"Loaded upload **{name}**." + (" New conversation." if changed else ""))

    def after_upload(session: ChatSession):
        """The upload box and the trial picker show what is selected: a failed upload empties the box, and a
        loaded or failed one empties the trial picker."""
        failed = session.motion is None
        boxes = [gr.update(value=None) if failed else gr.skip()]
        if catalog is not None:
            boxes.append(gr.update(value=None))
        return tuple(boxes) if len(boxes) > 1 else boxes[0]

    def ask(question: str, session: ChatSession):
        try:
            result = session.ask(answerer, question)
        except ValueError as err:
            return session.history, question, session, f"⚠️ {err}"
        confidence = result.get("confidence")
        note = f" (confidence {100 * confidence:.0f}%)" if isinstance(confidence, float) else ""
        return session.history, "", session, f"Answered in {result['latency_s']:.2f} s{note}."

    # -- layout --------------------------------------------------------------------------------------------------
    with gr.Blocks(title="BiomechGPT chat", analytics_enabled=False, delete_cache=(600, _SESSION_TTL_S)) as demo:
        state = gr.State(ChatSession(), time_to_live=_SESSION_TTL_S, delete_callback=lambda s: s.clear())
        gr.Markdown("# BiomechGPT · chat with a movement\nChoose a trial or upload joint angles, then ask a question.")
        with gr.Row():
            with gr.Column(scale=2):
                if catalog is not None:
                    with gr.Group():
                        activity = gr.Dropdown(_readable(catalog.choices("activity")), value=ANY, label="Activity",
                                               elem_id="filter-activity")
                        diagnosis = gr.Dropdown(_readable(catalog.choices("diagnosis")), value=ANY, label="Diagnosis",
                                                elem_id="filter-diagnosis")
                        split = gr.Dropdown(_readable(catalog.choices("split")), value=ANY, label="Split",
                                            elem_id="filter-split")
                        first, total = catalog.filter(reveal=False)
                        trial = gr.Dropdown(first, value=None, label="Trial", elem_id="trial", filterable=True)
                        count = gr.Markdown(f"{total} trials", elem_id="trial-count")
                upload = gr.File(label=f"…or upload a motion ({', '.join(UPLOAD_SUFFIXES)}; "
                                       f"up to {max_upload_mb:g} MB)", type="filepath", elem_id="upload")
                reveal = gr.Checkbox(False, label="Reveal labels of test-split trials", elem_id="reveal")
                status = gr.Markdown(_NO_MOTION, elem_id="status")
                metadata = gr.Markdown("", elem_id="metadata")
            with gr.Column(scale=3):
                stick = gr.HTML("", elem_id="stick-figure", min_height=200)
                curves = gr.Plot(label="Joint angles", elem_id="curves")
        chatbot = gr.Chatbot(label="Conversation", elem_id="chat", height=380, feedback_options=None,
                             placeholder="Answers appear here, each with the model's confidence.")
        with gr.Row():
            question = gr.Textbox(placeholder="Ask about this movement…", show_label=False, scale=6,
                                  elem_id="question", max_length=500, submit_btn=False)
            send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
        gr.Examples([[q] for q in questions], inputs=[question], label="Suggested questions (one per task)",
                    examples_per_page=len(questions))

        view = [state, status, metadata, stick, curves, chatbot]
        if catalog is not None:
            for control in (activity, diagnosis, split, reveal):
                control.change(update_trials, [activity, diagnosis, split, reveal], [trial, count],
                               api_visibility="private")
            trial.change(select_trial, [trial, reveal, state], view, api_name="select_trial")
        reveal.change(refresh_labels, [reveal, state], [metadata], api_visibility="private")
        upload.upload(select_upload, [upload, state], view, api_name="upload").then(
            after_upload, [state], [upload, trial] if catalog is not None else [upload], api_visibility="private")
        send.click(ask, [question, state], [chatbot, question, state, status], api_name="ask",
                   concurrency_limit=concurrency_limit, concurrency_id="model")
        question.submit(ask, [question, state], [chatbot, question, state, status], api_visibility="private",
                        concurrency_limit=concurrency_limit, concurrency_id="model")
    demo.max_upload_mb = max_upload_mb
    return demo


def _readable(values: list[str]) -> list[tuple[str, str]]:
    """Dropdown choices as (what the page shows, the label's value): "sit to stand" for `sit_to_stand`."""
    return [(str(v).replace("_", " "), v) for v in values]


def _without_server_path(message: str, path: str) -> str:
    """`message` with the server's temporary path of an upload replaced by the file's name."""
    message = message.replace(str(path), Path(path).name).replace(str(Path(path).parent) + os.sep, "")
    return message.rstrip(".")


def _source_name(source: str) -> str:
    """How the status line names a selection: `upload:NAME:SIZE` -> NAME, a trial id -> "trial ID"."""
    if source.startswith("upload:"):
        return source.removeprefix("upload:").rsplit(":", 1)[0]
    return f"trial {source}"


def _code_decoder(model_dir: str | os.PathLike | None):
    """motion codes -> Motion with the model's MotionTokenizer (loaded on first use), for corpus-only trials."""
    if model_dir is None:
        return None
    folder = Path(model_dir, "motion_tokenizer")
    tokenizer = []

    def decode(codes: list[int]) -> Motion:
        if not tokenizer:
            from biomechgpt.processing.tokenization_motion import MotionTokenizer

            tokenizer.append(MotionTokenizer.from_pretrained(str(folder)))
        return tokenizer[0].decode(codes)

    return decode if folder.is_dir() else None


def launch_app(demo, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: float | None = None,
               block: bool = True, quiet: bool = False):
    """Serve the page on `host:port` (loopback unless told otherwise) with the server-side upload limit.

    Returns what `gradio.Blocks.launch` returns (app, local URL, share URL); with `block=False` it returns at once
    and the caller stops the server with `demo.close()`.
    """
    limit = max_upload_mb if max_upload_mb is not None else getattr(demo, "max_upload_mb", DEFAULT_MAX_UPLOAD_MB)
    demo.queue(default_concurrency_limit=1, max_size=256)
    return demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=int(limit * 1024 * 1024),
        share=False,
        ssr_mode=False,
        prevent_thread_lock=not block,
        quiet=quiet,
        show_error=False,
    )
