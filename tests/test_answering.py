"""`biomechgpt.answering`: what `ask` and the chat page answer around the model's per-task answers.

A fake model answers each task with fixed answers, so these tests check the composition, not the model: a summary
agrees with the other answers (it is made of them, and parses back to them), gait metrics of a recording without gait
say so, off-topic questions are refused without asking the model, ambiguous ones carry a note.
"""

from __future__ import annotations

import re

import pytest

from biomechgpt.answering import answer_questions, answer_sentence, present_answer
from biomechgpt.dataset_builder import TASKS, parse_answer
from biomechgpt.dataset_builder.lexicon import LABEL_PHRASES, UNIT_PHRASES
from biomechgpt.dataset_builder.templates import answer_choices, render_answer
from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTAnswer
from test_routing import full_task_processor

NUMBERS = {"cadence": (97.6, "steps/min", "About {:.0f} steps/min."),
           "walking_speed": (0.8537, "m/s", "About {:.2f} m/s."),
           "stride_length": (1.046, "m", "About {:.2f} m."),
           "tug_time": (11.27, "s", "About {:.1f} s."),
           "fsst_time": (9.81, "s", "About {:.1f} s.")}
LABELS = {"impairment": "impaired", "impairment_side": "left", "diagnosis": "stroke", "assistive_device": "cane",
          "fall_history": "faller"}


class FakeModel:
    """Answers every task with a fixed answer; the activity is the one given."""

    def __init__(self, processor, activity: str, warning: str | None = None) -> None:
        self.processor = processor
        self.activity = activity
        self.warning = warning
        self.asked: list[tuple[str, str]] = []

    def answer_batch(self, motions, questions, *, tasks, processor=None, max_new_tokens=48, check_motions=False):
        self.checked = check_motions
        out = []
        for question, task in zip(questions, tasks):
            self.asked.append((question, task))
            if task in NUMBERS:
                value, unit, text = NUMBERS[task]
                out.append(BiomechGPTAnswer(question, task, text.format(value), value=value, unit=unit, spread=2.0))
            elif task == "summary":
                out.append(BiomechGPTAnswer(question, task, "Turning. Gait parameters: cadence 6"))  # never used
            else:
                label = self.activity if task == "activity" else LABELS[task]
                out.append(BiomechGPTAnswer(question, task, f"{label}.", label=label, confidence=0.9))
        for answer in out:
            answer.warning = self.warning if check_motions else None
        return out


@pytest.fixture(scope="module")
def processor():
    return full_task_processor()


@pytest.mark.parametrize("activity", ["walking", "squat", "timed_up_and_go", "jump"])
def test_a_summary_agrees_with_the_per_task_answers(processor, activity):
    model = FakeModel(processor, activity)
    tasks = list(processor.task_kinds)
    answers = {a["task"]: a for a in answer_questions(model, "motion", ["Summarise this trial.", *[
        f"question about {t}" for t in tasks if t != "summary"]], tasks=[None, *[t for t in tasks if t != "summary"]])}
    summary = answers["summary"]
    assert "summary" not in {task for _, task in model.asked}  # composed, not generated
    fields = parse_answer("summary", summary["answer"]).fields
    for task, answer in answers.items():
        if task == "summary":
            continue
        if answer["label"] is not None:
            assert fields[task] == answer["label"], (task, summary["answer"])
        elif answer["value"] is not None:  # the number as the answer states it
            assert fields[task] == parse_answer(task, answer["answer"]).value, (task, summary["answer"])
        else:  # a number the recording does not have is in neither answer
            assert task not in fields
    assert summary["answer"].endswith(".") and not re.search(r"\d$", summary["answer"])
    gait = activity == "walking"
    assert ("cadence" in fields) == gait and ("tug_time" in fields) == (activity == "timed_up_and_go")


@pytest.mark.parametrize("activity", ["squat", "jump", "sit_to_stand", "standing_balance"])
def test_gait_metrics_of_a_recording_without_gait_say_so(processor, activity):
    model = FakeModel(processor, activity)
    for answer in answer_questions(model, "motion", ["What is the cadence?", "How fast are they walking?",
                                                     "What's the step length?", "What was the TUG score?"]):
        assert answer["value"] is None and answer["spread"] is None, answer
        assert "not" in answer["answer"] and not re.search(r"\d", answer["answer"]), answer
    assert "no gait" in answer_questions(model, "motion", ["What is the cadence?"])[0]["answer"]


def test_gait_metrics_of_a_walk_are_the_models_numbers(processor):
    model = FakeModel(processor, "walking")
    cadence = answer_questions(model, "motion", ["What is the cadence?"])[0]
    assert cadence["value"] == 97.6 and cadence["note"] is None
    assert cadence["answer"] == "The cadence is about 98 steps per minute."
    assert cadence["model_text"] == "About 98 steps/min."


def test_off_topic_questions_are_refused_without_the_model(processor):
    model = FakeModel(processor, "walking")
    questions = ["What is the weather today?", "How long did the test take?"]
    weather, ambiguous = answer_questions(model, "motion", questions)
    assert weather["task"] is None and weather["answer"].startswith("I can only answer")
    assert all(q != "What is the weather today?" for q, _ in model.asked)
    assert ambiguous["task"] in ("tug_time", "fsst_time") and "could also be about" in ambiguous["note"]


def test_questions_are_routed_as_the_model_routes_them(processor):
    """`ask` and the chat page route with the processor's router, the one `model.answer` uses: everyday wordings
    included, questions about an animal refused."""
    model = FakeModel(processor, "walking")
    questions = ["Is the weakness bilateral?", "How fast can a cheetah run?", "Does she walk unassisted?"]
    side, cheetah, device = answer_questions(model, "motion", questions)
    assert [a["task"] for a in (side, cheetah, device)] == [processor.detect_task(q) for q in questions]
    assert side["task"] == "impairment_side" and side["label"] == "left"
    assert device["task"] == "assistive_device"
    assert cheetah["task"] is None and cheetah["answer"].startswith("I can only answer")


def test_an_unknown_explicit_task_is_a_one_line_error(processor):
    with pytest.raises(ValueError, match="task 'gait_speed' is not one this model was trained on"):
        answer_questions(FakeModel(processor, "walking"), "motion", ["Speed?"], tasks=["gait_speed"])


def test_rewordings_of_one_question_get_the_same_answer(processor):
    """The model is asked the routed task's training question, whatever the user's wording."""
    model = FakeModel(processor, "running")
    wordings = ["What kind of movement is in this clip?", "Is this person running or walking?",
                "Which activity does the recording show?"]
    answers = answer_questions(model, "motion", wordings)
    assert [a["task"] for a in answers] == ["activity"] * 3 and [a["question"] for a in answers] == wordings
    assert len({question for question, _ in model.asked}) == 1
    assert model.asked[0][0] == processor.task_questions["activity"][0]


def test_a_warning_about_the_recording_comes_with_every_answer(processor):
    warning = "This recording is unlike the training data in its arm angles."
    questions = ["What activity is this?", "Summarise this trial.", "What is the weather today?", "Cadence?"]
    answers = answer_questions(FakeModel(processor, "squat", warning), "motion", questions)
    assert [a["warning"] for a in answers] == [warning] * 4  # a refusal and a no-gait answer included
    assert all(a["warning"] is None for a in answer_questions(FakeModel(processor, "walking"), "motion", questions))


CLOSED_LABELS = [(task, label) for task, spec in TASKS.items() if spec.kind == "classification"
                 for label in spec.labels]


@pytest.mark.parametrize("task, label", CLOSED_LABELS)
def test_every_label_is_shown_in_one_plain_sentence(task, label):
    """Whatever synonym and template the model's sentence picked ("Activity: a walk.", "no aid at all"), the shown
    answer is the task's one sentence with the label's plainest phrase; it reads back as the same label."""
    shown = answer_sentence(task, label)
    assert shown and shown[0].isupper() and shown.endswith(".") and "_" not in shown, shown
    assert parse_answer(task, shown).label == label
    plainest = LABEL_PHRASES[task][label][0]
    assert plainest.lower() in shown.lower() or answer_choices(task, label)[1] == 1, shown  # or a sentence per label
    templates, phrases = answer_choices(task, label)
    for template in range(templates):
        for phrase in range(phrases):
            model_text = render_answer(task, label=label, template=template, phrase=phrase)
            answer = present_answer({"task": task, "label": label, "answer": model_text, "confidence": 0.7})
            assert answer["answer"] == shown and answer["model_text"] == model_text
            assert answer["label"] == label and answer["confidence"] == 0.7


@pytest.mark.parametrize("task, label", [(t, label) for t, label in CLOSED_LABELS
                                         if t in ("impairment", "fall_history")])
def test_a_yes_no_answer_is_shown_without_yes_or_no(task, label):
    """"Is her walking OK?" must not be answered "Yes, the movement is impaired.": the shown sentence states the
    label whichever way round the question was asked."""
    shown = answer_sentence(task, label)
    assert not shown.lower().startswith(("yes", "no,", "no.", "no;")), shown


@pytest.mark.parametrize("task", [t for t, spec in TASKS.items() if spec.kind == "numeric"])
@pytest.mark.parametrize("value", [0.537, 1.0, 12.46, 97.6])
def test_a_number_is_shown_with_its_value_and_unit(task, value):
    unit = TASKS[task].unit
    model_text = render_answer(task, value=value, unit=unit, template=2)  # "About 98 steps/min."
    answer = present_answer({"task": task, "value": value, "unit": unit, "spread": 2.5, "answer": model_text})
    assert answer["answer"] != model_text and UNIT_PHRASES[unit][1] in answer["answer"]
    assert (answer["value"], answer["unit"], answer["spread"]) == (value, unit, 2.5)
    shown, said = parse_answer(task, answer["answer"]), parse_answer(task, model_text)
    assert (shown.value, shown.unit) == (said.value, said.unit)


def test_a_sentence_that_would_read_otherwise_is_the_models():
    """Presentation never changes what an answer says: a label the corpus does not know, or a generated number at
    another precision than answers write, keep the model's own sentence."""
    odd_label = present_answer({"task": "activity", "label": "cartwheel", "answer": "A cartwheel."})
    assert odd_label["answer"] == "A cartwheel." and odd_label["model_text"] == "A cartwheel."
    finer = present_answer({"task": "walking_speed", "value": 1.234, "unit": "m/s", "answer": "About 1.234 m/s."})
    assert finer["answer"] == "About 1.234 m/s."
    free = present_answer({"task": "summary", "answer": "Walking, unimpaired."})
    assert free["answer"] == "Walking, unimpaired." and answer_sentence("summary") is None


def test_the_shown_answers_of_ask_and_the_chat_are_plain(processor):
    model = FakeModel(processor, "walking")
    questions = ["What is this person doing?", "Which side is affected?", "Does this person use a walking aid?"]
    answers = answer_questions(model, "motion", questions)
    assert [a["answer"] for a in answers] == ["This trial shows walking.", "The left side is affected.",
                                             "The participant uses a cane."]
    assert [a["model_text"] for a in answers] == ["walking.", "left.", "cane."]
    assert [a["label"] for a in answers] == ["walking", "left", "cane"]

