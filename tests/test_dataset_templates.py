"""Every answer the corpus can write parses back to its target, and the parser reads what clinicians write."""

from __future__ import annotations

import itertools
import random

import pytest

from biomechgpt.dataset_builder import TASKS, parse_answer, summary_fields
from biomechgpt.dataset_builder.lexicon import LABEL_ALIASES, LABEL_PHRASES
from biomechgpt.dataset_builder.parsing import _shared_wordings, label_wordings
from biomechgpt.dataset_builder.tasks import (
    CLASSIFICATION_TASKS,
    NUMERIC_TASKS,
    UNIT_DECIMALS,
    convert_unit,
    format_value,
    round_for_unit,
)
from biomechgpt.dataset_builder.templates import (
    ANSWERS,
    QUESTIONS,
    SUMMARY_SLOTS,
    answer_choices,
    format_summary_target,
    render_answer,
    render_question,
    render_summary,
    summary_choices,
)
from biomechgpt.labels import ACTIVITIES, AFFECTED_SIDES, ASSISTIVE_DEVICES, DIAGNOSES


def test_registry_covers_the_contract_tasks_and_label_sets():
    assert tuple(TASKS) == ("activity", "impairment", "impairment_side", "diagnosis", "assistive_device",
                            "fall_history", "cadence", "walking_speed", "stride_length", "tug_time", "fsst_time",
                            "summary")
    assert TASKS["activity"].labels == ACTIVITIES
    assert TASKS["diagnosis"].labels == DIAGNOSES
    assert TASKS["assistive_device"].labels == ASSISTIVE_DEVICES
    assert TASKS["impairment_side"].labels == AFFECTED_SIDES
    assert {TASKS[t].unit for t in NUMERIC_TASKS} == {"steps/min", "m/s", "m", "s"}


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_has_many_distinct_question_phrasings(task):
    texts = [q.text for q in QUESTIONS[task]]
    assert len(texts) >= 6 and len(set(texts)) == len(texts)
    for q in QUESTIONS[task]:
        assert q.unit is None or q.unit in TASKS[task].units


@pytest.mark.parametrize("task", CLASSIFICATION_TASKS)
def test_every_label_has_answer_wordings(task):
    for label in TASKS[task].labels:
        assert LABEL_PHRASES[task][label], (task, label)
        n_templates, _ = answer_choices(task, label=label)
        assert n_templates >= 4


def test_no_wording_names_two_labels():
    shared = _shared_wordings()  # raises on a wording of two labels or two tasks
    assert len(shared) > 150
    for task in CLASSIFICATION_TASKS:
        assert set(label_wordings(task).values()) == set(TASKS[task].labels)


@pytest.mark.parametrize("task", CLASSIFICATION_TASKS)
def test_classification_round_trip_for_every_template_label_and_phrase(task):
    n = 0
    for label in TASKS[task].labels:
        n_templates, n_phrases = answer_choices(task, label=label)
        for template, phrase in itertools.product(range(n_templates), range(n_phrases)):
            text = render_answer(task, label=label, template=template, phrase=phrase)
            parsed = parse_answer(task, text)
            assert parsed.label == label, (text, parsed)
            assert parsed.ok and parsed.value is None
            n += 1
    assert n >= 4 * len(TASKS[task].labels)


def _values(unit: str, rng: random.Random) -> list[float]:
    spans = {"steps/min": (30, 220), "m/s": (0.05, 6), "km/h": (0.2, 20), "m": (0.1, 3.5), "cm": (10, 350),
             "s": (3, 90)}
    low, high = spans[unit]
    return [low, high, *(rng.uniform(low, high) for _ in range(40))]


@pytest.mark.parametrize("task", NUMERIC_TASKS)
def test_numeric_round_trip_for_every_template_unit_and_value(task):
    rng = random.Random(task)
    for unit in TASKS[task].units:
        n_templates, n_phrases = answer_choices(task, unit=unit)
        for value in _values(unit, rng):
            target = round_for_unit(value, unit)
            for template, phrase in itertools.product(range(n_templates), range(n_phrases)):
                text = render_answer(task, value=target, unit=unit, template=template, phrase=phrase)
                parsed = parse_answer(task, text)
                assert (parsed.value, parsed.unit) == (target, unit), (text, parsed)
                assert format_value(target, unit) in text


def test_numbers_are_rounded_as_clinicians_say_them():
    assert render_answer("cadence", value=112.4, template=4) == "112 steps/min."
    assert render_answer("walking_speed", value=1.2345, unit="m/s", template=4) == "1.23 m/s."
    assert render_answer("walking_speed", value=4.44, unit="km/h", template=4) == "4.4 km/h."
    assert render_answer("stride_length", value=131.6, unit="cm", template=4) == "132 cm."
    assert render_answer("tug_time", value=12.34, template=4) == "12.3 s."
    assert UNIT_DECIMALS == {"steps/min": 0, "m/s": 2, "km/h": 1, "m": 2, "cm": 0, "s": 1}


@pytest.mark.parametrize(
    ("task", "text", "label"),
    [
        ("activity", "Looks like a TUG to me", "timed_up_and_go"),
        ("activity", "The patient uses a walking frame during a squat.", "squat"),  # device words are not activities
        ("activity", "tandem_walking", "tandem_walking"),
        ("activity", "Heel-to-toe walking along a line.", "tandem_walking"),
        ("activity", "The person walks with a cane.", "walking"),
        ("assistive_device", "The person walks with a cane.", "cane"),
        ("diagnosis", "Probably PD.", "parkinsons_disease"),
        ("diagnosis", "parkinsons_disease", "parkinsons_disease"),
        ("diagnosis", "Consistent with a left hemiparesis after a CVA.", "stroke"),
        ("assistive_device", "None.", "none"),
        ("assistive_device", "She walks with bilateral crutches.", "bilateral_crutches"),
        ("assistive_device", "He has an AFO on the right.", "ankle_foot_orthosis"),
        ("impairment_side", "Bilateral forearm crutches, but the left side is worse.", "left"),
        ("impairment", "No.", "unimpaired"),
        ("impairment", "The gait is abnormal.", "impaired"),
        ("fall_history", "No falls reported.", "non_faller"),
        ("fall_history", "Yes, two falls last year.", "faller"),
        ("fall_history", "The participant hasn't fallen.", "non_faller"),
    ],
)
def test_parser_reads_free_wordings(task, text, label):
    assert parse_answer(task, text).label == label


@pytest.mark.parametrize(
    ("task", "text", "value", "unit"),
    [
        ("walking_speed", "Walking at 4.3 km/h on the treadmill", 4.3, "km/h"),
        ("walking_speed", "0.8 metres per second", 0.8, "m/s"),
        ("walking_speed", "About 1.1", 1.1, "m/s"),  # no unit: the task's canonical unit
        ("stride_length", "Stride of 125 centimetres", 125.0, "cm"),
        ("stride_length", "1.3 m/s and a stride of 1.25 m", 1.25, "m"),  # another task's unit is skipped
        ("cadence", "Cadence is 104 steps per minute.", 104.0, "steps/min"),
        ("tug_time", "It took 13.5 seconds.", 13.5, "s"),
    ],
)
def test_parser_reads_numbers_with_units(task, text, value, unit):
    parsed = parse_answer(task, text)
    assert (parsed.value, parsed.unit) == (value, unit)


def test_value_in_converts_units():
    parsed = parse_answer("walking_speed", "4.5 km/h")
    assert parsed.value_in("m/s") == pytest.approx(1.25)
    assert convert_unit(1.25, "m", "cm") == pytest.approx(125.0)
    with pytest.raises(ValueError, match="cannot convert"):
        convert_unit(1.0, "m", "s")


def test_unparseable_answers_are_not_ok_and_unknown_tasks_raise():
    assert not parse_answer("diagnosis", "I cannot tell from this motion.").ok
    assert not parse_answer("cadence", "quite fast").ok
    assert not parse_answer("summary", "Nothing to say.").ok
    with pytest.raises(ValueError, match="unknown task 'gait_score'"):
        parse_answer("gait_score", "12")


def _random_fields(rng: random.Random) -> dict:
    activity = rng.choice(ACTIVITIES)
    fields = {"activity": activity}
    for task in ("impairment", "impairment_side", "diagnosis", "assistive_device", "fall_history"):
        fields[task] = rng.choice(TASKS[task].labels)
    if activity in ("walking", "running", "tandem_walking", "stairs") or rng.random() < 0.2:
        for task, (low, high) in {"cadence": (40, 200), "walking_speed": (0.1, 5), "stride_length": (0.2, 3)}.items():
            if rng.random() < 0.85:
                fields[task] = rng.uniform(low, high)
    if activity == "timed_up_and_go":
        fields["tug_time"] = rng.uniform(5, 60)
    if activity == "four_square_step_test":
        fields["fsst_time"] = rng.uniform(5, 60)
    return fields


def test_summary_round_trip_covers_every_choice_of_every_slot():
    rng = random.Random(0)
    checked = 0
    for slot in SUMMARY_SLOTS:
        for _ in range(150):
            fields = _random_fields(rng)
            space = summary_choices(fields)
            choices = {s: rng.randrange(n) for s, n in space.items()}
            for index in range(space[slot]):
                choices[slot] = index
                text = render_summary(fields, choices)
                parsed = parse_answer("summary", text)
                target = format_summary_target(fields)
                assert parsed.label == target, (text, target, parsed.label)
                checked += 1
    assert checked > 2000


def test_summary_fields_split_the_target_back():
    fields = {"activity": "timed_up_and_go", "impairment": "impaired", "impairment_side": "left",
              "diagnosis": "stroke", "assistive_device": "cane", "fall_history": "faller", "tug_time": 14.26}
    target = format_summary_target(fields)
    assert target == ("activity=timed_up_and_go; impairment=impaired; impairment_side=left; diagnosis=stroke; "
                      "assistive_device=cane; fall_history=faller; tug_time=14.3")
    assert summary_fields(target) == {**fields, "tug_time": 14.3}
    text = render_summary(fields, {s: 0 for s in SUMMARY_SLOTS})
    parsed = parse_answer("summary", text)
    assert parsed.fields["activity"] == "timed_up_and_go" and parsed.fields["tug_time"] == 14.3
    with pytest.raises(ValueError):
        summary_fields("speed=fast")


def test_question_unit_is_the_answer_unit():
    units = {render_question("walking_speed", i)[1] for i in range(len(QUESTIONS["walking_speed"]))}
    assert units == {"m/s", "km/h"}
    assert render_question("cadence", 0)[1] == "steps/min"
    assert all("{label}" in t or "{value}" not in t for t in ANSWERS["activity"]["*"])


def test_aliases_and_phrases_name_known_labels():
    for table in (LABEL_PHRASES, LABEL_ALIASES):
        for task, per_label in table.items():
            assert set(per_label) <= set(TASKS[task].labels), task
