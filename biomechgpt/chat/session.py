"""Per-browser-session state of the chat page, and the answerer it talks to.

A `ChatSession` holds the selected motion, its cached prefix (whatever the answerer computes once per motion and
reuses for every question about it; for BiomechGPT the model's `MotionPrefix`, the prefix's KV cache) and the
conversation. Selecting a different motion drops the prefix and starts a new conversation. Nothing here imports gradio
or torch, so the logic is tested without a server or a model.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from biomechgpt.answering import answer_questions, present_answer
from biomechgpt.dataset_builder.tasks import TASK_NAMES
from biomechgpt.processing.motion import Motion

__all__ = [
    "TASK_ORDER",
    "SUGGESTED_QUESTIONS",
    "MAX_QUESTION_CHARS",
    "Answerer",
    "PrefixAnswerer",
    "ModelAnswerer",
    "ChatSession",
    "format_answer",
    "quiet_weight_loading",
    "without_loading_bars",
]

# The corpus tasks, in the registry's order (dataset_builder/tasks.py), which is the order the page suggests them.
TASK_ORDER: tuple[str, ...] = tuple(TASK_NAMES)

# One plain question per task; the page prefers the corpus's own wording when a QA corpus is given.
SUGGESTED_QUESTIONS: dict[str, str] = {
    "activity": "What activity is this person doing?",
    "impairment": "Is this person's movement impaired?",
    "impairment_side": "Which side is affected?",
    "diagnosis": "What is the most likely diagnosis?",
    "assistive_device": "Does this person use an assistive device?",
    "fall_history": "Does this person have a history of falls?",
    "cadence": "What is the cadence in steps per minute?",
    "walking_speed": "How fast is this person walking?",
    "stride_length": "What is the stride length?",
    "tug_time": "How long did the Timed Up and Go test take?",
    "fsst_time": "How long did the Four Square Step Test take?",
    "summary": "Summarize this movement.",
}

# A question is one sentence; a cap keeps a pasted document from tying up the model.
MAX_QUESTION_CHARS = 500

_ANSWER_KEYS = ("question", "task", "answer", "model_text", "label", "value", "unit", "confidence", "spread", "note",
                "warning")


@runtime_checkable
class Answerer(Protocol):
    """Anything that answers a question about a motion.

    `answer(motion, question)` returns a mapping with the keys `question`, `task`, `answer`, `model_text`, `label`,
    `value`, `unit`, `confidence`, `spread`, `note` and `warning` (missing keys count as `None`).
    """

    def answer(self, motion: Motion, question: str) -> Mapping[str, Any]: ...


@runtime_checkable
class PrefixAnswerer(Protocol):
    """An answerer that computes a motion's prefix once (`prepare`) and answers many questions from it."""

    def prepare(self, motion: Motion) -> Any: ...

    def answer_prepared(self, prefix: Any, question: str) -> Mapping[str, Any]: ...


class ModelAnswerer:
    """Adapts a [`BiomechGPTForCausalLM`] to the chat page, with one motion-prefix cache per session.

    `prepare` runs the selected motion's prefix once (`model.encode_prefix`) and the session keeps the returned
    `MotionPrefix`; every question of that session is answered from it (`model.answer(prefix, question)`), so the
    motion is never run again, however many sessions ask in turn. Model calls are serialised with a lock: one forward
    pass already uses every core and `model.answer` toggles the module's train/eval flag.

    Args:
        model ([`BiomechGPTForCausalLM`]): a loaded model whose processor is reachable (`model.processor`).
        max_new_tokens (`int`, *optional*, defaults to 48): limit for generated (numeric and summary) answers.
    """

    def __init__(self, model: Any, max_new_tokens: int = 48) -> None:
        self.model = model
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()
        # Another model class without `encode_prefix` still gets its motion tokenized once per session.
        self.caches_kv = callable(getattr(model, "encode_prefix", None))
        # Another model class (no question router or batch answering) is asked each question as it comes.
        self.routes = callable(getattr(model, "answer_batch", None)) and callable(
            getattr(getattr(model, "processor", None), "route_question", None))

    @classmethod
    def from_pretrained(cls, model_dir: str, **kwargs: Any) -> ModelAnswerer:
        """Load a model folder (`biomechgpt train --out DIR`) in eval mode, processor included."""
        import biomechgpt  # noqa: F401  (registers the Auto classes)
        from transformers import AutoModelForCausalLM

        with quiet_weight_loading():
            model = AutoModelForCausalLM.from_pretrained(model_dir)
            _ = model.processor  # load the processor (and its MotionTokenizer) now, not on the first question
        model.eval()
        return cls(model, **kwargs)

    def prefix_from_codes(self, codes: list[int]) -> Any:
        """A prefix from motion codes the corpus already has (no MotionTokenizer pass), or `None` for a model that
        reads the motion frames itself (`config.reads_features`): codes are not its input, so the session prepares
        the selected motion instead."""
        if getattr(getattr(self.model, "config", None), "reads_features", False):
            return None
        return self._prefix([int(c) for c in codes])

    def prepare(self, motion: Motion) -> Any:
        return self._prefix(motion)

    def _prefix(self, motion: Motion | list[int]) -> Any:
        """The model's `MotionPrefix` (or, for a model without one, the motion codes)."""
        with self._lock:
            if self.caches_kv:
                return self.model.encode_prefix(motion)
            codes = motion if isinstance(motion, list) else self.model.processor.encode_motion(motion)
            return [int(c) for c in codes]

    def answer_prepared(self, prefix: Any, question: str) -> dict[str, Any]:
        with self._lock:
            if self.routes:  # refusals, composed summaries, no gait metrics without gait (biomechgpt.answering)
                return answer_questions(self.model, prefix, [question], max_new_tokens=self.max_new_tokens)[0]
            result = self.model.answer(prefix, question, max_new_tokens=self.max_new_tokens)
        return present_answer(result)

    def answer(self, motion: Motion, question: str) -> dict[str, Any]:
        return self.answer_prepared(self.prepare(motion), question)


@contextmanager
def quiet_weight_loading():
    """Within it transformers draws no "Loading weights" bars. A local folder loads in a second; the bars were noise
    in the server's log. Only those bars are hidden, and only while loading: warnings and other bars still show."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.set_tqdm_hook(without_loading_bars)
    try:
        yield
    finally:
        hf_logging.set_tqdm_hook(previous)


def without_loading_bars(factory: Any, args: tuple, kwargs: dict) -> Any:
    """A transformers tqdm hook: the bars it shows while loading weights ("Loading weights", "Loading checkpoint
    shards") are created disabled, every other bar as asked."""
    if str(kwargs.get("desc") or "").startswith("Loading"):
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)


@dataclass
class ChatSession:
    """What one browser session has selected and asked.

    Args:
        motion (`Motion`, *optional*): the selected motion.
        source (`str`, *optional*): what it is (a trial id, or `upload:<file name>`); a new source resets the chat.
        info (`dict`): the metadata shown next to it.
        history (`list[dict]`): the conversation as Gradio chat messages (`{"role", "content"}`).
        answers (`list[dict]`): the raw answers, one per assistant message.
        curve_view (`str`): how the joint angles are drawn, `"cycle"` (mean ± SD per gait cycle, where cycles are
            found) or `"time"`; kept when the motion changes.
    """

    motion: Motion | None = None
    source: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    prefix: Any = None
    prefix_builds: int = 0  # how often a prefix was computed: once per selected motion when the cache works
    curve_view: str = "cycle"

    def select(self, motion: Motion, source: str, info: Mapping[str, Any] | None = None) -> bool:
        """Select a motion. Returns whether it changed (then the conversation and the cached prefix are dropped).

        Re-selecting the same source keeps the conversation, so refreshing the view does not lose it.
        """
        if not isinstance(motion, Motion):
            raise TypeError(f"motion must be a Motion, got {type(motion).__name__}")
        changed = source != self.source or self.motion is None
        if changed:
            self.history = []
            self.answers = []
            self.prefix = None
        self.motion = motion
        self.source = source
        self.info = dict(info or {})
        return changed

    def clear(self) -> None:
        """Forget the selection and the conversation."""
        self.motion = None
        self.source = None
        self.info = {}
        self.history = []
        self.answers = []
        self.prefix = None

    def ask(self, answerer: Answerer | PrefixAnswerer, question: str) -> dict[str, Any]:
        """Answer a question about the selected motion and append both to the conversation.

        Raises:
            `ValueError`: one line, when no motion is selected or the question is empty or too long.
        """
        if not isinstance(question, str):
            raise ValueError("question: must be text")
        question = " ".join(question.split())
        if not question:
            raise ValueError("question: type a question first")
        if len(question) > MAX_QUESTION_CHARS:
            raise ValueError(f"question: {len(question)} characters, the limit is {MAX_QUESTION_CHARS}")
        if self.motion is None:
            raise ValueError("no motion selected: choose a trial or upload a motion file first")
        start = time.perf_counter()
        if isinstance(answerer, PrefixAnswerer):
            if self.prefix is None:
                self.prefix = answerer.prepare(self.motion)
                self.prefix_builds += 1
            raw = answerer.answer_prepared(self.prefix, question)
        else:
            raw = answerer.answer(self.motion, question)
        result = {key: raw.get(key) for key in _ANSWER_KEYS}
        result["question"] = question
        result["latency_s"] = time.perf_counter() - start
        self.answers.append(result)
        self.history.append({"role": "user", "content": question})
        self.history.append({"role": "assistant", "content": format_answer(result)})
        return result


def format_answer(result: Mapping[str, Any]) -> str:
    """The chat text of one answer: the sentence, then task and confidence (or, for a number, the spread of the
    model's belief) on a second line (Markdown); a warning that the recording is unlike the training data comes
    right under the sentence."""
    text = str(result.get("answer") or "").strip() or "(no answer)"
    details = []
    task = result.get("task")
    details.append(f"task: {task.replace('_', ' ')}" if task else "task: not recognised")
    confidence, spread = result.get("confidence"), result.get("spread")
    if confidence is not None and math.isfinite(float(confidence)):
        details.append(f"confidence: {100 * float(confidence):.0f}%")
    elif spread is not None and math.isfinite(float(spread)):
        details.append(f"spread: ±{float(spread):.3g} {result.get('unit') or ''}".rstrip())
    else:
        details.append("confidence: n/a (generated answer)")
    note = f"\n\n{result['note']}" if result.get("note") and result.get("task") else ""
    warning = f"\n\n⚠️ **{result['warning']}**" if result.get("warning") else ""
    return f"{text}{warning}{note}\n\n*{' · '.join(details)}*"
