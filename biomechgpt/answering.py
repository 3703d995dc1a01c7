"""Answers as a user meets them in `biomechgpt ask` and the chat page, built on the model's per-task answers.

The model answers one task at a time ([`BiomechGPTForCausalLM.answer_batch`]). Around it, this module:

- routes each question with the processor's router ([`BiomechGPTProcessor.route_question`], the one `model.answer`
  and the Hub remote code use too) and answers a question about none of the tasks with a refusal that lists them,
  and an ambiguous one with a note naming the task it took; a routed question is put to the model in its task's most
  frequent training wording, so rewording it never changes the answer;
- shows each answer in one fixed sentence per task with the plainest wording of its label or unit
  ([`present_answer`]), where the model's own sentence is its training answers' shortest, synonyms picked at random
  ("Activity: a walk."); the label, value, confidence and spread stay the model's, its sentence is kept as
  `model_text`;
- composes a summary from the model's own answers to the other tasks (so it never contradicts them and is never cut
  off mid-number), instead of letting the model write one freely;
- answers a gait metric (cadence, speed, stride length) of a recording the model reads as an activity without gait
  (a squat, a jump, a sit-to-stand) by saying so, and a timed-test time of a recording of another activity likewise.
  Whether there is gait is the model's own activity answer, not a handcrafted feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from biomechgpt.simulation.activities import GAIT_ACTIVITIES

__all__ = ["GAIT_TASKS", "TIMED_TASKS", "SUMMARY_TASK", "answer_questions", "answer_sentence", "present_answer"]

# Gait metrics: measured on trials of `GAIT_ACTIVITIES` only.
GAIT_TASKS: tuple[str, ...] = ("cadence", "walking_speed", "stride_length")
# Timed tests: measured on trials of their own activity only.
TIMED_TASKS: dict[str, str] = {"tug_time": "timed_up_and_go", "fsst_time": "four_square_step_test"}
SUMMARY_TASK = "summary"
_SUMMARY_LABELS = ("activity", "impairment", "impairment_side", "diagnosis", "assistive_device", "fall_history")
_ANSWER_KEYS = ("question", "task", "answer", "model_text", "label", "value", "unit", "confidence", "spread",
                "probabilities", "recordings", "warning")
# The corpus's answer template (dataset_builder.templates.ANSWERS) a task's shown answer uses, when not its first:
# "This trial shows walking.", where the first reads "The person is performing walking."; for yes/no tasks a sentence
# without "Yes," or "No,", which reads wrong after a question asked the other way round ("Is her walking OK?" ->
# "No impairment is visible.", not "Yes, the movement is impaired.").
_SHOWN_TEMPLATE = {"activity": 1, "impairment": 4, "fall_history": 3}
_UNIT_IN_WORDS = 1  # UNIT_PHRASES: "steps per minute", "metres per second", not "steps/min"


def answer_questions(model: Any, motion: Any, questions: Sequence[str], *, tasks: Sequence[str | None] | None = None,
                     processor: Any = None, max_new_tokens: int = 48) -> list[dict[str, Any]]:
    """Answer `questions` about one motion, as `biomechgpt ask` and the chat page do.

    Args:
        model ([`BiomechGPTForCausalLM`]): the model.
        motion (`Motion`, path, codes or [`MotionPrefix`]): the recording.
        questions (`list[str]`): the questions.
        tasks (`list`, *optional*): the task of each question; `None` entries are routed from the wording.
        processor ([`BiomechGPTProcessor`], *optional*): defaults to the model's.
        max_new_tokens (`int`, *optional*, defaults to 48): limit for generated answers.

    Returns:
        `list[dict]`, one per question: the keys of [`BiomechGPTAnswer`] plus `note` (why the answer is not the
        model's plain answer to the question, or which task an ambiguous question was taken as; else `None`) and
        `model_text` (the model's own sentence; `answer` says the same in the task's fixed sentence, see
        [`present_answer`]; `None` for refusals and composed answers).
        `warning` (the recording is unlike the training data, see [`BiomechGPTAnswer`]) is the same on every answer
        about the recording, refusals and composed summaries included, once the model was asked anything.
    """
    processor = processor if processor is not None else model.processor
    questions = list(questions)
    tasks = list(tasks) if tasks is not None else [None] * len(questions)
    if len(tasks) != len(questions):
        raise ValueError(f"got {len(tasks)} tasks for {len(questions)} questions")
    known = processor.task_kinds
    routed: list[str | None] = []
    notes: list[str | None] = []
    for question, task in zip(questions, tasks):
        if task is not None:
            if task not in known:
                raise ValueError(f"task {task!r} is not one this model was trained on ({', '.join(sorted(known))})")
            routed.append(task)
            notes.append(None)
        else:
            route = processor.route_question(question)
            routed.append(route.task)
            notes.append(processor.route_note(route))

    # What the answers depend on: the activity for gait metrics and timed tests, every component for a summary.
    context = set()
    for task in routed:
        if task == SUMMARY_TASK:
            context.update(t for t in (*_SUMMARY_LABELS, *GAIT_TASKS, *TIMED_TASKS) if t in known)
        elif task in GAIT_TASKS or task in TIMED_TASKS:
            context.add("activity")
    context &= set(known)
    # Once routed, the model is asked the task's own training question: a rewording of the same question cannot change
    # the answer (the model's answers had depended on the wording for 6 of 29 real recordings). So each task is asked
    # once, whether one question, several rewordings or a summary needs it.
    asked = list(dict.fromkeys(t for t in routed if t is not None and t != SUMMARY_TASK))
    batch_tasks = asked + sorted(context - set(asked), key=list(known).index)
    replies = model.answer_batch([motion] * len(batch_tasks), [_plain_question(processor, t) for t in batch_tasks],
                                 tasks=batch_tasks, processor=processor, max_new_tokens=max_new_tokens,
                                 check_motions=True) if batch_tasks else []
    by_task = {t: present_answer(_as_dict(r)) for t, r in zip(batch_tasks, replies)}
    activity = by_task.get("activity", {}).get("label")
    warning = next((r["warning"] for r in by_task.values() if r.get("warning")), None)

    out: list[dict[str, Any]] = []
    for k, (question, task) in enumerate(zip(questions, routed)):
        if task is None:
            result = _blank(question, None, processor.refusal(question))
            result["note"] = "not a question about this recording"
        elif task == SUMMARY_TASK:
            result = _blank(question, task, "")
            result.update(_compose_summary(processor, by_task, activity))
            result["note"] = notes[k] or "composed from the model's answers to the other questions"
        else:
            result = {**by_task[task], "question": question, "note": notes[k]}
            missing = _not_measured(processor, task, activity)
            if missing is not None:
                result = {**_blank(question, task, missing), "note": notes[k]}
        result["warning"] = warning
        out.append(result)
    return out


def answer_sentence(task: str | None, label: str | None = None, value: float | None = None,
                    unit: str | None = None) -> str | None:
    """The sentence `ask` and the chat page show for a label or a value of `task`: the corpus's answer template for
    the task with the first (plainest) phrase of the label, or the value as answers write it with its unit in words.

    Args:
        task (`str`): a corpus task (`dataset_builder.TASKS`).
        label (`str`, *optional*): the label of a closed-set task.
        value (`float`, *optional*): the number of a numeric task, in `unit`.
        unit (`str`, *optional*): the unit of `value`; defaults to the task's.

    Returns:
        `str` ("This trial shows walking.", "The participant uses no assistive device.", "The cadence is about 98
        steps per minute."), or `None` for a summary, a task, label or unit the corpus does not know, or no answer.
    """
    from biomechgpt.dataset_builder.tasks import TASKS
    from biomechgpt.dataset_builder.templates import render_answer

    spec = TASKS.get(task) if task else None
    try:
        if spec is not None and spec.kind == "numeric" and value is not None:
            return render_answer(task, value=float(value), unit=unit or spec.unit, template=0, phrase=_UNIT_IN_WORDS)
        if spec is not None and spec.kind == "classification" and label is not None:
            return render_answer(task, label=str(label), template=_SHOWN_TEMPLATE.get(task, 0), phrase=0)
    except (ValueError, KeyError, IndexError):  # a label or unit of another label set
        return None
    return None


def present_answer(answer: Any) -> dict[str, Any]:
    """An answer as `ask` and the chat page show it: `answer` is [`answer_sentence`] of its label or value, the same
    sentence for the same answer whatever synonym the model's own sentence picked, and `model_text` that sentence.

    Only the wording changes: label, value, unit, confidence, spread and probabilities are the model's, and the shown
    sentence reads back (`dataset_builder.parse_answer`) as the model's sentence does; where it would not (a number
    at another precision, a label the corpus does not know), the model's sentence is shown.

    Args:
        answer ([`BiomechGPTAnswer`] or `dict`): a model's answer.

    Returns:
        `dict`: its fields with `answer` and `model_text`.
    """
    out = answer.to_dict() if hasattr(answer, "to_dict") else dict(answer)
    model_text = out.get("model_text") or out.get("answer")
    shown = answer_sentence(out.get("task"), out.get("label"), out.get("value"), out.get("unit"))
    if shown is not None and model_text is not None and not _reads_the_same(out["task"], shown, str(model_text)):
        shown = None
    return {**out, "answer": shown or model_text, "model_text": model_text}


def _reads_the_same(task: str, shown: str, model_text: str) -> bool:
    from biomechgpt.dataset_builder import parse_answer

    mine, theirs = parse_answer(task, shown), parse_answer(task, model_text)
    return (mine.label, mine.value, mine.unit) == (theirs.label, theirs.value, theirs.unit)


def _as_dict(reply: Any) -> dict[str, Any]:
    raw = reply.to_dict() if hasattr(reply, "to_dict") else dict(reply)
    return {key: raw.get(key) for key in _ANSWER_KEYS}


def _blank(question: str, task: str | None, text: str) -> dict[str, Any]:
    return {**dict.fromkeys(_ANSWER_KEYS), "question": question, "task": task, "answer": text, "recordings": 1}


def _plain_question(processor: Any, task: str) -> str:
    """The question the model was trained on most often for `task` (its processor's first example)."""
    examples = processor.task_questions.get(task) or []
    return examples[0] if examples else f"What is {processor.task_title(task)}?"


def _activity_phrase(activity: str) -> str:
    from biomechgpt.dataset_builder.lexicon import LABEL_PHRASES

    phrases = LABEL_PHRASES["activity"].get(activity)
    return phrases[0] if phrases else activity.replace("_", " ")


def _not_measured(processor: Any, task: str, activity: str | None) -> str | None:
    """The answer to a gait metric or timed-test question about a recording without that movement, else `None`."""
    if activity is None:
        return None
    title = processor.task_title(task)
    if task in GAIT_TASKS and activity not in GAIT_ACTIVITIES:
        return (f"This recording shows {_activity_phrase(activity)}, not walking or running: it has no gait, so it "
                f"has no {title}.")
    if task in TIMED_TASKS and activity != TIMED_TASKS[task]:
        test, title = _activity_phrase(TIMED_TASKS[task]), title.removeprefix("the ")
        return f"This recording shows {_activity_phrase(activity)}, not {test}: it has no {title}."
    return None


def _compose_summary(processor: Any, by_task: dict[str, dict[str, Any]], activity: str | None) -> dict[str, Any]:
    """A summary made of the model's own answers: the corpus's summary sentences when every component is known,
    else the answers' sentences in task order. Numbers only where the recording has them (gait, its timed test)."""
    fields: dict[str, Any] = {t: by_task[t]["label"] for t in _SUMMARY_LABELS if by_task.get(t, {}).get("label")}
    for task in (*GAIT_TASKS, *TIMED_TASKS):
        reply = by_task.get(task)
        if reply and reply.get("value") is not None and _not_measured(processor, task, activity) is None:
            fields[task] = float(reply["value"])
    if not fields:
        return {"answer": "The model has no answers to compose a summary from."}
    from biomechgpt.dataset_builder.templates import format_summary_target, render_summary, summary_choices

    if all(t in fields for t in _SUMMARY_LABELS):
        try:
            text = render_summary(fields, dict.fromkeys(summary_choices(fields), 0))
        except KeyError:  # a label the corpus's phrases do not know (a model trained on another label set)
            text = None
        if text is not None:
            return {"answer": text, "label": format_summary_target(fields)}
    parts = [str(by_task[t]["answer"]).strip() for t in processor.task_kinds if t in fields]
    return {"answer": " ".join(p if p.endswith(".") else p + "." for p in parts if p)}
