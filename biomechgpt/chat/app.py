"""The Gradio page of `biomechgpt chat`: choose or upload a motion, look at it, ask the model about it.

Layout (paper, Figure 1), conversation first so that it is in view without scrolling on a laptop screen: on the left
the trial picker (filters by activity, diagnosis and split), an upload box, a status line and the trial's details
(collapsed); on the right the conversation, with per-answer confidence, and one suggested question per task that is
asked when clicked. Below them the animated stick figure (right side red, left side blue) and the joint-angle curves,
per gait cycle (mean ± SD) where the recording has gait cycles, else over time. On a narrow window the curves take the
whole width under the stick figure.

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
from biomechgpt.chat.plots import CURVE_VIEWS, joint_angle_figure, stick_figure_svg
from biomechgpt.chat.session import (
    SUGGESTED_QUESTIONS,
    TASK_ORDER,
    ChatSession,
    ModelAnswerer,
    quiet_weight_loading,
)
from biomechgpt.processing.motion import Motion, MotionInputError

__all__ = ["UPLOAD_SUFFIXES", "DEFAULT_MAX_UPLOAD_MB", "build_app", "launch_app", "suggested_questions",
           "display_name", "source_name"]

logger = logging.getLogger(__name__)

UPLOAD_SUFFIXES: tuple[str, ...] = (".mot", ".sto", ".csv", ".npz")
DEFAULT_MAX_UPLOAD_MB = 20.0
_SESSION_TTL_S = 3600  # a closed tab's session (motion, prefix, conversation) is freed after an hour
_NO_MOTION = "Choose a trial or upload a motion file (.mot, .sto, .csv, .npz) to start."
_CURVE_VIEW_CHOICES = [("per gait cycle (mean ± SD)", "cycle"), ("over time", "time")]
# Column-name endings that are units, and words the page spells differently, for `display_name`.
_UNIT_SUFFIXES = (("_steps_per_min", "steps/min"), ("_m_s", "m/s"), ("_kg", "kg"), ("_s", "s"), ("_m", "m"))
_WORDS = {"id": "ID", "n": "number of", "tug": "TUG", "fsst": "FSST", "ten": "10"}
_NAME_FIELDS = ("trial_id", "participant_id", "source")  # their values are names: underscores stay
# The figure shrinks with a narrow column. The Trial dropdown's text stops short of its arrow and ends in "…" where a
# label is longer than the box. Gradio capped the page at 768 px on a window 768 to 1023 px wide, which left the
# picker 300 px at 900 px (a trial's label cut under the arrow): the page fills the window (`fill_width`, up to
# `_MAX_PAGE_PX`) and below 1280 px the picker and the conversation share it equally (each 410 px at 900 px).
_MAX_PAGE_PX = 1216  # as Gradio's cap left the page at 1280 to 1535 px
_CSS = f"""
#page {{max-width: {_MAX_PAGE_PX}px; margin: 0 auto}}
#stick-figure svg {{max-width: 100%; height: auto}}
#trial input {{text-overflow: ellipsis; padding-right: 24px}}
@media (max-width: 1279px) {{
  #picker, #conversation {{flex-grow: 1 !important}}
}}
"""


def suggested_questions(catalog: TrialCatalog | None = None) -> list[str]:
    """One question per task, in `TASK_ORDER`, in the corpus's own wording where the corpus has that task."""
    corpus = catalog.questions if catalog is not None else {}
    return [corpus.get(task) or SUGGESTED_QUESTIONS[task] for task in TASK_ORDER]


def display_name(name: str) -> str:
    """A column or label name in words: `cadence_steps_per_min` -> "cadence (steps/min)", `participant_id` ->
    "participant ID", `parkinsons_disease` -> "parkinsons disease"."""
    unit = ""
    for suffix, words in _UNIT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name, unit = name[: -len(suffix)], f" ({words})"
            break
    return " ".join(_WORDS.get(word, word) for word in name.split("_") if word) + unit


def _metadata_markdown(info: Mapping[str, Any]) -> str:
    if not info:
        return ""
    rows = ["| field | value |", "| --- | --- |"]
    for key, value in info.items():
        if isinstance(value, float):
            value = f"{value:.3g}"
        elif isinstance(value, str) and key not in _NAME_FIELDS:
            value = value.replace("_", " ")
        rows.append(f"| {display_name(str(key))} | {str(value).replace('|', '/')} |")
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
        return session, status, info, svg, draw_curves(session), session.history

    def draw_curves(session: ChatSession):
        if session.motion is None:
            return None
        return joint_angle_figure(session.motion, title=source_name(session.source), view=session.curve_view)

    def set_curve_view(view: str, session: ChatSession):
        if view not in CURVE_VIEWS:
            return session, gr.skip(), f"⚠️ curves: choose one of {', '.join(CURVE_VIEWS)}"
        session.curve_view = view
        return session, draw_curves(session), gr.skip()

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
            dropped = f" {source_name(previous)} is no longer selected;" if previous else ""
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

    def ask_suggested(index: Any, session: ChatSession):
        """A click on a suggested question asks it."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(questions):
            return session.history, gr.skip(), session, f"⚠️ suggested question: no question number {index!r}"
        return ask(questions[index], session)

    # -- layout --------------------------------------------------------------------------------------------------
    with gr.Blocks(title="BiomechGPT chat", analytics_enabled=False, delete_cache=(600, _SESSION_TTL_S),
                   fill_width=True) as demo:
        state = gr.State(ChatSession(), time_to_live=_SESSION_TTL_S, delete_callback=lambda s: s.clear())
        with gr.Column(elem_id="page"):  # at most _MAX_PAGE_PX wide, centred
            gr.Markdown("## BiomechGPT · chat with a movement\n"
                        "Choose a trial or upload joint angles, then ask a question.")
            with gr.Row():
                with gr.Column(scale=2, min_width=300, elem_id="picker"):
                    if catalog is not None:
                        with gr.Group():
                            with gr.Row():
                                activity = gr.Dropdown(_readable(catalog.choices("activity")), value=ANY,
                                                       label="Activity", elem_id="filter-activity", min_width=140)
                                diagnosis = gr.Dropdown(_readable(catalog.choices("diagnosis")), value=ANY,
                                                        label="Diagnosis", elem_id="filter-diagnosis", min_width=140)
                                split = gr.Dropdown(_readable(catalog.choices("split")), value=ANY, label="Split",
                                                    elem_id="filter-split", min_width=140)
                            first, total = catalog.filter(reveal=False)
                            trial = gr.Dropdown(first, value=None, label="Trial", elem_id="trial", filterable=True)
                            count = gr.Markdown(f"{total} trials", elem_id="trial-count")
                    upload = gr.File(label=f"…or upload a motion ({', '.join(UPLOAD_SUFFIXES)}; "
                                           f"up to {max_upload_mb:g} MB)", type="filepath", elem_id="upload",
                                     height=130)
                    reveal = gr.Checkbox(False, label="Reveal labels of test-split trials", elem_id="reveal")
                    status = gr.Markdown(_NO_MOTION, elem_id="status")
                    with gr.Accordion("Trial details", open=False, elem_id="details"):
                        metadata = gr.Markdown("", elem_id="metadata")
                with gr.Column(scale=3, min_width=360, elem_id="conversation"):
                    chatbot = gr.Chatbot(label="Conversation", elem_id="chat", height=400, feedback_options=None,
                                         placeholder="Answers appear here, each with the model's confidence.")
                    with gr.Row():
                        question = gr.Textbox(placeholder="Ask about this movement…", show_label=False, scale=6,
                                              elem_id="question", max_length=500, submit_btn=False)
                        send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask", min_width=80)
                    chips = gr.Dataset(components=[question], samples=[[q] for q in questions], type="index",
                                       label="Suggested questions (one per task): click one to ask it",
                                       samples_per_page=len(questions), elem_id="suggestions")
            with gr.Row():
                with gr.Column(scale=1, min_width=260):
                    stick = gr.HTML("", elem_id="stick-figure", min_height=200)
                with gr.Column(scale=3, min_width=640):  # under the stick figure, full width, on a narrow window
                    curve_view = gr.Radio(_CURVE_VIEW_CHOICES, value="cycle", label="Joint angles",
                                          elem_id="curve-view")
                    curves = gr.Plot(show_label=False, elem_id="curves")

        view = [state, status, metadata, stick, curves, chatbot]
        if catalog is not None:
            for control in (activity, diagnosis, split, reveal):
                control.change(update_trials, [activity, diagnosis, split, reveal], [trial, count],
                               api_visibility="private")
            trial.change(select_trial, [trial, reveal, state], view, api_name="select_trial")
        reveal.change(refresh_labels, [reveal, state], [metadata], api_visibility="private")
        upload.upload(select_upload, [upload, state], view, api_name="upload").then(
            after_upload, [state], [upload, trial] if catalog is not None else [upload], api_visibility="private")
        curve_view.change(set_curve_view, [curve_view, state], [state, curves, status], api_name="curve_view")
        answer_outputs = [chatbot, question, state, status]
        send.click(ask, [question, state], answer_outputs, api_name="ask",
                   concurrency_limit=concurrency_limit, concurrency_id="model")
        question.submit(ask, [question, state], answer_outputs, api_visibility="private",
                        concurrency_limit=concurrency_limit, concurrency_id="model")
        chips.click(ask_suggested, [chips, state], answer_outputs, api_visibility="private",
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


def source_name(source: str) -> str:
    """How the page names a selection (status line, plot title): `upload:NAME:SIZE` -> NAME, a trial id ->
    "trial ID"; never the internal `upload:` id."""
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

            with quiet_weight_loading():
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
        css=_CSS,
    )
