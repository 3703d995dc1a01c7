"""Question phrasings and answer sentences for every task.

A question template may name the unit it asks in (speed in km/h, stride length in cm); the answer and the row's
target then use that unit. Answers are rendered from explicit choices (template index, label phrase, unit phrase) so
the builder can draw them from a seeded generator and the tests can walk through every one of them. Every answer
this module can write parses back to its target with `biomechgpt.dataset_builder.parse_answer`.

The summary answer is composed of one sentence per component (activity first, numbers last, the rest in a drawn
order); its target is the canonical string `format_summary_target` writes, e.g.
"activity=walking; impairment=impaired; ...; cadence=98; walking_speed=0.85; stride_length=1.02".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from collections.abc import Mapping

from .lexicon import LABEL_PHRASES, UNIT_PHRASES
from .tasks import NUMERIC_TASKS, SUMMARY_FIELDS, TASKS, format_value

__all__ = [
    "QuestionTemplate",
    "QUESTIONS",
    "ANSWERS",
    "SUMMARY_SLOTS",
    "render_question",
    "render_answer",
    "answer_choices",
    "render_summary",
    "summary_choices",
    "format_summary_target",
]


@dataclass(frozen=True)
class QuestionTemplate:
    """A question phrasing; `unit` is the unit it asks the answer in (None: the task's canonical unit)."""

    text: str
    unit: str | None = None


def _q(*texts: str, unit: str | None = None) -> tuple[QuestionTemplate, ...]:
    return tuple(QuestionTemplate(t, unit) for t in texts)


QUESTIONS: dict[str, tuple[QuestionTemplate, ...]] = {
    "activity": _q(
        "What activity is the person performing?",
        "What is the person doing in this recording?",
        "Which movement task does this motion show?",
        "Name the activity in this trial.",
        "Classify the activity shown in this motion.",
        "What clinical test or activity was recorded here?",
        "Identify the movement being performed.",
        "Which task is the participant doing?",
        "What kind of movement is this?",
        "Tell me what activity this is.",
    ),
    # All impairment and fall questions ask "is it impaired / has the person fallen", so a leading yes/no in the
    # answer always means the same label.
    "impairment": _q(
        "Is this movement impaired?",
        "Does the participant show a movement impairment?",
        "Is there any sign of impairment in this motion?",
        "Would you classify this movement as impaired or unimpaired?",
        "Is the movement pattern here abnormal?",
        "Based on this motion, is the participant impaired?",
        "Do you see a movement impairment?",
        "Is this person's movement pattern impaired?",
    ),
    "impairment_side": _q(
        "Which side is affected?",
        "Which side of the body shows the impairment?",
        "Is the impairment on the left, the right, or both sides?",
        "What is the more affected side?",
        "Which leg is affected, if any?",
        "Is one side affected more than the other? Which one?",
        "Is the impairment lateralised, and to which side?",
    ),
    "diagnosis": _q(
        "What is the most likely diagnosis?",
        "Which condition does this movement suggest?",
        "What diagnosis fits this movement pattern?",
        "Does this person have a neurological or musculoskeletal condition? Which one?",
        "What is the participant's likely clinical diagnosis?",
        "Based on the movement, what condition might the participant have?",
        "Which clinical population does this participant most likely belong to?",
        "What underlying condition explains this movement?",
    ),
    "assistive_device": _q(
        "Does the participant use an assistive device? Which one?",
        "What assistive device is being used?",
        "Which walking aid, if any, does this person use?",
        "Is the person using a cane, a walker, crutches or an orthosis?",
        "What mobility aid does the participant rely on?",
        "Which assistive device is the participant using, if any?",
        "Is any walking aid or brace in use?",
    ),
    "fall_history": _q(
        "Does the participant have a history of falls?",
        "Has this person fallen before?",
        "Is this participant a faller?",
        "Has the participant reported previous falls?",
        "Based on the movement, does this person have a fall history?",
        "Is there a history of falling?",
        "Would you expect this participant to have fallen in the past?",
    ),
    "cadence": _q(
        "What is the cadence?",
        "How many steps per minute does the person take?",
        "What is the step rate in steps per minute?",
        "Estimate the cadence of this gait.",
        "What cadence does this trial show?",
        "How fast is the stepping rate?",
        "Give the cadence in steps/min.",
        "What is the participant's cadence during this trial?",
    ),
    "walking_speed": _q(
        "What is the walking speed?",
        "How fast is the person moving, in m/s?",
        "What is the gait speed in metres per second?",
        "Estimate the speed of progression.",
        "How fast does the participant move?",
        "What speed does this trial show?",
        "What is the participant's average speed?",
    )
    + _q(
        "What is the speed in km/h?",
        "How fast is the person going, in kilometres per hour?",
        "Give the speed in km/h.",
        unit="km/h",
    ),
    "stride_length": _q(
        "What is the stride length?",
        "How long are the strides?",
        "Estimate the stride length in metres.",
        "What stride length does the participant have?",
        "How far does the person travel per stride?",
        "What is the average stride length in this trial?",
    )
    + _q(
        "What is the stride length in centimetres?",
        "How long is a stride, in cm?",
        "Give the stride length in cm.",
        unit="cm",
    ),
    "tug_time": _q(
        "How long did the Timed Up and Go take?",
        "What is the TUG time?",
        "How many seconds did the participant need for the Timed Up and Go?",
        "What was the completion time of this TUG test?",
        "Estimate the Timed Up and Go time.",
        "How quickly was the TUG completed?",
        "What time did the participant score on the Timed Up and Go?",
    ),
    "fsst_time": _q(
        "How long did the Four Square Step Test take?",
        "What is the FSST time?",
        "How many seconds did the participant need for the Four Square Step Test?",
        "What was the completion time of this FSST?",
        "Estimate the Four Square Step Test time.",
        "How quickly was the FSST completed?",
        "What time did the participant score on the four-square step test?",
    ),
    "summary": _q(
        "Summarise this trial.",
        "Give a short clinical description of this movement.",
        "Describe what you see in this recording.",
        "Write a brief clinical summary of the participant's movement.",
        "What would you note about this trial in a clinical report?",
        "Summarize the activity and the participant's movement.",
        "Provide a short clinical impression of this motion.",
    ),
}

_ANY = "*"  # answer templates shared by every label; they hold a {label} slot filled with a LABEL_PHRASES phrase


def _sided(side: str) -> tuple[str, ...]:
    return (
        f"The {side} side is affected.",
        f"Mainly the {side} side.",
        f"{side.capitalize()}.",
        f"The impairment is on the {side} side.",
        f"The affected side is the {side}.",
    )


# Numeric templates hold {value} and {unit}; the value is the only number in the sentence.
ANSWERS: dict[str, dict[str, tuple[str, ...]]] = {
    "activity": {
        _ANY: (
            "The person is performing {label}.",
            "This trial shows {label}.",
            "{label}.",
            "Activity: {label}.",
            "It looks like {label}.",
            "I see {label}.",
        )
    },
    "impairment": {
        "impaired": (
            "Yes, the movement is impaired.",
            "Yes. The movement pattern is clearly impaired.",
            "Impaired.",
            "The movement is abnormal and shows an impairment.",
            "This movement is impaired.",
        ),
        "unimpaired": (
            "No, the movement is unimpaired.",
            "No. The movement looks within normal limits.",
            "Unimpaired.",
            "The movement is not impaired.",
            "No impairment is visible.",
        ),
    },
    "impairment_side": {
        "none": (
            "Neither side is affected.",
            "No affected side; the movement is symmetric.",
            "None.",
            "There is no affected side.",
        ),
        "left": _sided("left"),
        "right": _sided("right"),
        "bilateral": (
            "Both sides are affected.",
            "Bilateral.",
            "The impairment is bilateral.",
            "Both sides, roughly equally.",
        ),
    },
    "diagnosis": {
        _ANY: (
            "This movement is most consistent with {label}.",
            "The pattern suggests {label}.",
            "Likely diagnosis: {label}.",
            "{label}.",
            "I would say {label}.",
            "This looks like {label}.",
        )
    },
    "assistive_device": {
        _ANY: (
            "The participant uses {label}.",
            "Assistive device: {label}.",
            "{label}.",
            "The movement suggests {label}.",
            "Most likely {label}.",
        )
    },
    "fall_history": {
        "faller": (
            "Yes, the participant has a history of falls.",
            "Yes; previous falls are reported.",
            "Faller.",
            "There is a history of falls.",
        ),
        "non_faller": (
            "No, the participant has no history of falls.",
            "No; no previous falls are reported.",
            "Non-faller.",
            "There is no history of falls.",
        ),
    },
    "cadence": {
        _ANY: (
            "The cadence is about {value} {unit}.",
            "Cadence: {value} {unit}.",
            "About {value} {unit}.",
            "The person takes roughly {value} {unit}.",
            "{value} {unit}.",
            "I estimate a cadence of {value} {unit}.",
        )
    },
    "walking_speed": {
        _ANY: (
            "The walking speed is about {value} {unit}.",
            "Speed: {value} {unit}.",
            "About {value} {unit}.",
            "The person moves at roughly {value} {unit}.",
            "{value} {unit}.",
            "I estimate the speed at {value} {unit}.",
        )
    },
    "stride_length": {
        _ANY: (
            "The stride length is about {value} {unit}.",
            "Stride length: {value} {unit}.",
            "About {value} {unit} per stride.",
            "Each stride covers roughly {value} {unit}.",
            "{value} {unit}.",
        )
    },
    "tug_time": {
        _ANY: (
            "The Timed Up and Go took {value} {unit}.",
            "TUG time: {value} {unit}.",
            "About {value} {unit}.",
            "The participant completed the TUG in {value} {unit}.",
            "{value} {unit}.",
        )
    },
    "fsst_time": {
        _ANY: (
            "The Four Square Step Test took {value} {unit}.",
            "FSST time: {value} {unit}.",
            "About {value} {unit}.",
            "The participant completed the FSST in {value} {unit}.",
            "{value} {unit}.",
        )
    },
}


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def render_question(task: str, template: int) -> tuple[str, str | None]:
    """The question text of `QUESTIONS[task][template]` and the unit it asks in (the task's unit when unnamed)."""
    q = QUESTIONS[task][template]
    return q.text, q.unit or TASKS[task].unit


def answer_choices(task: str, label: str | None = None, unit: str | None = None) -> tuple[int, int]:
    """(number of answer templates, number of label or unit phrases) available for this target."""
    if TASKS[task].kind == "numeric":
        return len(ANSWERS[task][_ANY]), len(UNIT_PHRASES[unit or TASKS[task].unit])
    templates = ANSWERS[task].get(label) or ANSWERS[task][_ANY]
    uses_phrase = any("{label}" in t for t in templates)
    return len(templates), len(LABEL_PHRASES[task][label]) if uses_phrase else 1


def render_answer(task: str, *, label: str | None = None, value: float | None = None, unit: str | None = None,
                  template: int = 0, phrase: int = 0) -> str:
    """One answer sentence for a classification (`label`) or numeric (`value` in `unit`) target.

    `template` picks the sentence and `phrase` the label's or unit's wording (see `answer_choices`). A numeric value
    is written rounded as `format_value` does; the caller's target should hold that same rounded value.
    """
    spec = TASKS[task]
    if spec.kind == "numeric":
        unit = unit or spec.unit
        if unit not in spec.units:
            raise ValueError(f"task {task} is not asked in {unit!r}; units: {', '.join(spec.units)}")
        text = ANSWERS[task][_ANY][template].format(value=format_value(value, unit), unit=UNIT_PHRASES[unit][phrase])
        return _capitalize(text)
    if spec.kind != "classification":
        raise ValueError(f"task {task}: use render_summary")
    if label not in spec.labels:
        raise ValueError(f"task {task}: unknown label {label!r}")
    templates = ANSWERS[task].get(label) or ANSWERS[task][_ANY]
    return _capitalize(templates[template].format(label=LABEL_PHRASES[task][label][phrase]))


# ---- summary -----------------------------------------------------------------------------------------------------

_SUMMARY_ACTIVITY = ("{act}.", "The recording shows {act}.", "Activity: {act}.", "This is {act}.")
_SUMMARY_DIAGNOSIS = ("The pattern is consistent with {dx}.", "Likely diagnosis: {dx}.", "Most likely {dx}.")
# keyed by (impaired, side kind); {side} is "the left side" / "the right side" / "both sides"
_SUMMARY_IMPAIRMENT = {
    (True, "lateral"): ("The movement is impaired, mainly on {side}.", "Impaired movement affecting {side}.",
                        "There is a clear impairment of {side}."),
    (True, "bilateral"): ("The movement is impaired on both sides.", "Impaired movement affecting both sides.",
                          "There is a bilateral impairment."),
    (True, "none"): ("The movement is impaired but symmetric.", "Impaired, symmetric movement.",
                     "There is an impairment affecting neither side more than the other."),
    (False, "none"): ("The movement is unimpaired and symmetric.",
                      "Movement is within normal limits; no affected side.",
                      "No impairment is evident, and neither side is affected."),
    (False, "lateral"): ("The movement is unimpaired, with only mild involvement of {side}.",
                         "Unimpaired movement; {side} is only mildly involved.",
                         "No impairment is evident; {side} is only mildly involved."),
    (False, "bilateral"): ("The movement is unimpaired, with only mild involvement of both sides.",
                           "Unimpaired movement; both sides are only mildly involved.",
                           "No impairment is evident; both sides are only mildly involved."),
}
_SUMMARY_DEVICE = ("The participant uses {dev}.", "Assistive device: {dev}.", "Mobility aid: {dev}.")
_SUMMARY_FALLS = {
    "faller": ("There is a history of falls.", "The participant reports previous falls.",
               "The participant is a faller."),
    "non_faller": ("There is no history of falls.", "No previous falls are reported.",
                   "The participant is a non-faller."),
}
_SUMMARY_GAIT_PARTS = {
    "cadence": ("cadence {v} steps/min", "{v} steps/min"),
    "walking_speed": ("speed {v} m/s", "{v} m/s"),
    "stride_length": ("stride length {v} m", "a stride of {v} m"),
}
_SUMMARY_GAIT = ("Measured: {parts}.", "{Parts}.", "Gait parameters: {parts}.")
_SUMMARY_TIMED = {
    "tug_time": ("TUG time {v} s.", "The TUG was completed in {v} seconds.", "Completion time: {v} s."),
    "fsst_time": ("FSST time {v} s.", "The FSST was completed in {v} seconds.", "Completion time: {v} s."),
}
_MIDDLE = ("diagnosis", "impairment", "assistive_device", "fall_history")
_ORDERS = tuple(itertools.permutations(range(len(_MIDDLE))))

# The choices a summary is rendered from and how many values each has (some depend on the target, see
# `summary_choices`).
SUMMARY_SLOTS: tuple[str, ...] = (
    "activity_template", "activity_phrase", "diagnosis_template", "diagnosis_phrase", "impairment_template",
    "device_template", "device_phrase", "falls_template", "gait_template", "gait_part", "timed_template", "order",
)


def _side_kind(side: str) -> str:
    return "none" if side == "none" else "bilateral" if side == "bilateral" else "lateral"


def summary_choices(fields: Mapping[str, object]) -> dict[str, int]:
    """How many values each of `SUMMARY_SLOTS` can take for a summary of `fields` (the summary's components)."""
    return {
        "activity_template": len(_SUMMARY_ACTIVITY),
        "activity_phrase": len(LABEL_PHRASES["activity"][fields["activity"]]),
        "diagnosis_template": len(_SUMMARY_DIAGNOSIS),
        "diagnosis_phrase": len(LABEL_PHRASES["diagnosis"][fields["diagnosis"]]),
        "impairment_template": 3,
        "device_template": len(_SUMMARY_DEVICE),
        "device_phrase": len(LABEL_PHRASES["assistive_device"][fields["assistive_device"]]),
        "falls_template": 3,
        "gait_template": len(_SUMMARY_GAIT),
        "gait_part": 2,
        "timed_template": 3,
        "order": len(_ORDERS),
    }


def format_summary_target(fields: Mapping[str, object]) -> str:
    """The canonical target string of a summary: "name=value" in `SUMMARY_FIELDS` order, joined by "; ".

    Numbers are written in the task's canonical unit, rounded as answers write them.
    """
    parts = []
    for name in SUMMARY_FIELDS:
        if fields.get(name) is None:
            continue
        value = fields[name]
        if name in NUMERIC_TASKS:
            value = format_value(float(value), TASKS[name].unit)
        parts.append(f"{name}={value}")
    return "; ".join(parts)


def render_summary(fields: Mapping[str, object], choices: Mapping[str, int]) -> str:
    """A short clinical description of a trial.

    Args:
        fields (`Mapping`): the components: "activity", "diagnosis", "impairment", "impairment_side",
            "assistive_device", "fall_history" (labels) and, where defined for the trial, the numbers "cadence",
            "walking_speed", "stride_length", "tug_time" or "fsst_time" in canonical units.
        choices (`Mapping[str, int]`): an index for each of `SUMMARY_SLOTS` (see `summary_choices`).
    """
    act = LABEL_PHRASES["activity"][fields["activity"]][choices["activity_phrase"]]
    sentences = {
        "diagnosis": _SUMMARY_DIAGNOSIS[choices["diagnosis_template"]].format(
            dx=LABEL_PHRASES["diagnosis"][fields["diagnosis"]][choices["diagnosis_phrase"]]
        ),
        "impairment": _SUMMARY_IMPAIRMENT[
            (fields["impairment"] == "impaired", _side_kind(str(fields["impairment_side"])))
        ][choices["impairment_template"]].format(side=f"the {fields['impairment_side']} side"),
        "assistive_device": _SUMMARY_DEVICE[choices["device_template"]].format(
            dev=LABEL_PHRASES["assistive_device"][fields["assistive_device"]][choices["device_phrase"]]
        ),
        "fall_history": _SUMMARY_FALLS[str(fields["fall_history"])][choices["falls_template"]],
    }
    text = [_capitalize(_SUMMARY_ACTIVITY[choices["activity_template"]].format(act=act))]
    text += [_capitalize(sentences[_MIDDLE[i]]) for i in _ORDERS[choices["order"]]]
    gait = [
        _SUMMARY_GAIT_PARTS[name][choices["gait_part"]].format(v=format_value(float(fields[name]), TASKS[name].unit))
        for name in ("cadence", "walking_speed", "stride_length")
        if fields.get(name) is not None
    ]
    if gait:
        joined = gait[0] if len(gait) == 1 else ", ".join(gait[:-1]) + " and " + gait[-1]
        template = _SUMMARY_GAIT[choices["gait_template"]]
        text.append(template.format(parts=joined, Parts=_capitalize(joined)))
    for name in ("tug_time", "fsst_time"):
        if fields.get(name) is not None:
            value = format_value(float(fields[name]), TASKS[name].unit)
            text.append(_SUMMARY_TIMED[name][choices["timed_template"]].format(v=value))
    return " ".join(text)
