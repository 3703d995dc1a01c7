"""Answers as a user meets them in `biomechgpt ask` and the chat page, built on the model's per-task answers.

The model answers one task at a time ([`BiomechGPTForCausalLM.answer_batch`]). Around it, this module:

- routes each question ([`route_question`]: the processor's router, [`BiomechGPTProcessor.route_question`], on the
  question with everyday wordings put in the clinical words its cues know) and answers a question about none of the
  tasks with a refusal that lists them, and an ambiguous one with a note naming the task it took; a routed question is
  put to the model in its task's most frequent training wording, so rewording it never changes the answer;
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

import re
from collections.abc import Sequence
from typing import Any

from biomechgpt.dataset_builder.lexicon import LABEL_ALIASES, LABEL_PHRASES
from biomechgpt.processing.processing_biomechgpt import QuestionRoute
from biomechgpt.simulation.activities import GAIT_ACTIVITIES

__all__ = ["GAIT_TASKS", "TIMED_TASKS", "SUMMARY_TASK", "EVERYDAY_WORDINGS", "answer_questions", "answer_sentence",
           "present_answer", "route_question"]

# Gait metrics: measured on trials of `GAIT_ACTIVITIES` only.
GAIT_TASKS: tuple[str, ...] = ("cadence", "walking_speed", "stride_length")
# Timed tests: measured on trials of their own activity only.
TIMED_TASKS: dict[str, str] = {"tug_time": "timed_up_and_go", "fsst_time": "four_square_step_test"}
SUMMARY_TASK = "summary"
_SUMMARY_LABELS = ("activity", "impairment", "impairment_side", "diagnosis", "assistive_device", "fall_history")
_ANSWER_KEYS = ("question", "task", "answer", "model_text", "label", "value", "unit", "confidence", "spread",
                "probabilities", "recordings", "warning")
# The corpus's answer template (dataset_builder.templates.ANSWERS) a task's shown answer uses, when not its first:
# "This trial shows walking.", where the first reads "The person is performing walking."
_SHOWN_TEMPLATE = {"activity": 1}
_UNIT_IN_WORDS = 1  # UNIT_PHRASES: "steps per minute", "metres per second", not "steps/min"


# Everyday wordings and the clinical words the router's cues (processing_biomechgpt.TASK_CUES) know them by: a
# clinician or a patient says "what is she up to", "which half of the body", "walking support" or "at what rate are
# the steps taken" where the cues say "doing", "which side", "aid" and "cadence"; and names of labels from the
# corpus's lexicon ("bilateral", "unaided", "CVA") that the cues lack. Each pattern is a regular expression
# over the lower-cased question, applied in order; the router then scores the question in the clinical words. Only
# routing reads the rewording: the model is asked its task's own question and the user sees theirs.
EVERYDAY_WORDINGS: tuple[tuple[str, str], ...] = (
    # activity: what the person is doing
    (r"\bup to\b(?! ?\d)", "doing"),
    (r"\b(?:carry|carries|carrying|carried) out\b|\bengaged in\b|\bbusy with\b", "doing"),
    (r"\b(?:get|gets|getting|got|rise|rises|rising|stand|stands|standing) up (?:out of|from|off) (?:a|the|his|her|"
     r"their) (?:chair|seat|stool)\b", "sit to stand"),
    (r"\b(what|which) (?:kind|type|sort) of (?=(?:task|test)s?\b)", r"\1 "),
    (r"\b(?:identify|name|classify|recogni[sz]e) (?:the |this )?(?:motion|movement|activity|task|exercise)\b",
     "which activity"),
    (r"\b(?:asked|instructed|told|supposed|meant) to do\b", "doing"),
    (r"\btasks?\b", "activity"),
    (r"\b(?:{0})(?: \w+){{0,3}} or (?:\w+ ){{0,2}}(?:{0})\b".format(
        "walking|running|jogging|standing|sitting|squatting|jumping|hopping|turning|stepping|climbing|marching"),
     "activity"),
    # impairment: is anything wrong with how they move ("what is wrong with him" stays a diagnosis question)
    (r"\b(?:is|are|was) (?:there )?(?:anything|something) (?:wrong|off|amiss|not right)\b", "is it abnormal"),
    (r"\bwrong with (?:how|the way)\b", "abnormal"),
    (r"\b(?:amiss|odd|strange|weird|peculiar|irregular)\b", "unusual"),
    (r"\b(?:deficits?|dysfunction|disabilit(?:y|ies)|handicap)\b", "impairment"),
    (r"\bdisturb\w*", "impairment"),
    # impairment side: a half of the body, one-sided
    (r"\b(?:which|what|one|either|the other|left|right) half\b|\bhalf of (?:the|his|her|their) body\b",
     "side"),
    (r"\b(?:one[- ]?sided|unilateral(?:ly)?|lopsided)\b", "on one side"),
    (r"\bhemi[- ]?(?:body|side)\b", "side"),
    (r"\b(which|what) (?:lower|upper) (?:limb|leg|extremity)\b|\b(which|what) extremity\b", r"\1\2 limb"),
    (r"\b(?:protect\w*|guard\w*|spar(?:e|es|ed|ing))\b", "favour"),
    (r"\b(?:than|compared (?:to|with)|versus|vs) the other(?: one| leg| side| limb| foot)?\b", "one side"),
    (r"\bbilateral(?:ly)?\b(?! (?:forearm |elbow )?crutch)", "both sides"),
    (r"\bsymmetr\w*", "asymmetry"),
    (r"^(?=.*\b(?:sides?|legs?|limbs?|feet|foot)\b)(.*?)\b(?:worse|poorer|less good|more affected)\b", r"\1weaker"),
    # assistive device: walking support, help, equipment
    (r"\b(?:walking|mobility|gait|external|physical) (?:support|help|equipment|gear)\b", "walking aid"),
    (r"\b(with|without|uses?|using|used|needs?|needing|requires?|relies on|rely on) (?:any |some |a |an )?"
     r"(?:support|help|equipment|gear|gadget)\b", r"\1 aid"),
    (r"\b(?:wheelchair|zimmer|splint|insoles?)\b", "device"),
    (r"\b(?:unaided|unassisted|independently)\b", "without an aid"),
    # cadence: the rate, tempo, rhythm or frequency of the steps
    (r"^(?=.*\b(?:foot ?steps?|steps?|stepping|footfalls?)\b)(.*?)\b(?:rate|tempo|rhythm|frequency|how often|"
     r"how frequently)\b", r"\1cadence"),
    # walking speed: miles per hour, a slow walker
    (r"\b(?:mph|miles (?:per|an|a) hour)\b", "km/h"),
    (r"\b(?:slow|fast|quick|brisk)(?:er)? walkers?\b", "walking speed"),
    # stride length: the size of a step
    (r"\b(?:step|stride) size\b|\bsize of (?:a |each |the )?(?:step|stride)s?\b", "step length"),
    (r"\blength of (?:a |each |one |the |their |his |her )?(?:step|stride)s?\b", "stride length"),
    (r"\b(?:short|long|small|big|large|tiny|little)(?:er)? (?:steps?|strides?)\b|"
     r"\b(?:steps?|strides?) (?:\w+ ){0,2}(?:short|long|small|big|large|tiny)(?:er)?\b", "step length"),
    # summary: a note, recap or account of the trial
    (r"\b(?:synopsis|recap|rundown|gist|write-?up)\b", "summary"),
    (r"\b(?:clinical|short|brief|quick) (?:note|account|assessment|paragraph)\b", "summary"),
    (r"\bwhat (?:do |did |can )?you (?:observe|notice|see|make of)\b", "your observations"),
)
_EVERYDAY = [(re.compile(pattern), clinical) for pattern, clinical in EVERYDAY_WORDINGS]
# The corpus's names of the diagnoses and assistive devices (dataset_builder.lexicon: "knee OA", "CVA", "a frame",
# "unaided") name their task: each is read as the task's clinical word. Longest names first, so "bilateral crutches"
# is a device before "bilateral" is a side; "healthy" and "control" stay everyday words and "hemiparesis" also
# names a side.
_LABEL_WORDS = {"diagnosis": "diagnosis", "assistive_device": "assistive device"}
_NOT_LABEL_NAMES = ("healthy", "control", "hemiparesis", "hemiparetic")


def _label_names() -> dict[str, str]:
    """name -> task, for every phrase and alias of the labels of `_LABEL_WORDS`' tasks, in words, without article."""
    names = {}
    for task in _LABEL_WORDS:
        for source in (LABEL_PHRASES, LABEL_ALIASES):
            for phrase in (p for phrases in source[task].values() for p in phrases):
                name = re.sub(r"^(?:a|an|the) ", "", " ".join(re.findall(r"[a-z0-9']+", phrase.lower())))
                if name not in _NOT_LABEL_NAMES:
                    names[name] = task
    return names


_LABEL_TASK = _label_names()
_LABEL_NAME = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(_LABEL_TASK, key=len, reverse=True))) + r")\b")
# A question about an animal, a product or what a kind of being can do ("How fast can a cheetah run?", "Which running
# shoe should I buy?"), and not about the recorded person, is refused.
_OTHER_SUBJECTS = re.compile(
    r"\b(?:recommend\w*|buy|buying|purchase\w*|shop|shopping|prices?|brands?)\b|"
    r"\b(?:animals?|cheetahs?|horses?|dogs?|cats?|cows?|birds?|lions?|tigers?|elephants?|rabbits?|mice|mouse|"
    r"insects?|spiders?|ants?|fish|snakes?|monkeys?|apes?|bears?|wolf|wolves|deer|kangaroos?|ostrich(?:es)?|"
    r"penguins?|ducks?|chickens?|pigs?|sheep|goats?|camels?|giraffes?|zebras?|frogs?|hummingbirds?)\b|"
    # what a kind of being can do ("How fast does a greyhound run?", "How far can a human walk?")
    r"\bhow \w+ (?:can|could|does|do|will|would) (?:a|an|the average|most|humans?|people)\b")
_ABOUT_THE_RECORDING = re.compile(
    r"\b(?:this|these|here|he|she|they|him|her|them|his|their|patients?|subjects?|participants?|person|recording|"
    r"trial|clip|file|video)\b")


def route_question(processor: Any, question: str) -> QuestionRoute:
    """Where `ask` and the chat page send `question`: the processor's [`QuestionRoute`] of the question with its
    everyday wordings in clinical words (`EVERYDAY_WORDINGS`); a question about an animal or a product and not about
    the recorded person is refused (`task` is `None`).

    Args:
        processor ([`BiomechGPTProcessor`]): the processor; only its tasks can be chosen.
        question (`str`): the question as the user wrote it.

    Returns:
        [`QuestionRoute`]: the task (or `None`), its score and the alternatives.
    """
    text = " ".join(question.lower().replace("-", " ").split())
    if _OTHER_SUBJECTS.search(text) and not _ABOUT_THE_RECORDING.search(text):
        return QuestionRoute(None)
    for pattern, clinical in _EVERYDAY:
        text = pattern.sub(clinical, text)
    text = _LABEL_NAME.sub(lambda match: _LABEL_WORDS[_LABEL_TASK[match.group()]], text)
    return processor.route_question(text)


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
            route = route_question(processor, question)
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
