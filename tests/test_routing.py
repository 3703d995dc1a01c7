"""Question routing: natural questions go to the right task, off-topic ones are refused, ambiguous ones say which
task they took.

There is one router, the processor's ([`BiomechGPTProcessor.route_question`]): `model.answer`, `answer_batch`,
`answer_participant`, `ask`, the chat page and a model loaded as Hub remote code without the biomechgpt package all
route with it. The questions in tests/data/ were written apart from the corpus templates
(dataset_builder/templates.py), each set before the router change it was measured on; its header says when and what it
scored. Sets 1 to 6 and the development set have since tuned the router's cues (TASK_CUES), its everyday wordings
(EVERYDAY_WORDINGS) or its vocabulary fallback, so they guard against regressions; sets 7 and 8 never tuned it: their
floors are the honest estimate on new wordings. Run this file with `-s` to print the measured shares.
"""

from __future__ import annotations

from pathlib import Path

import json
import subprocess
import sys
import textwrap

import pytest

from biomechgpt.dataset_builder import label_names
from biomechgpt.dataset_builder.tasks import TASKS
from biomechgpt.dataset_builder.templates import QUESTIONS
from biomechgpt.processing import processing_biomechgpt
from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor
from test_train_helpers import make_tiny_model_and_processor

DATA = Path(__file__).parent / "data"
SETS = sorted(p.name for p in DATA.glob("routing_questions*.tsv"))
_KINDS = {"classification": "closed", "numeric": "numeric", "summary": "free"}


def read_questions(name: str) -> list[tuple[set[str], str]]:
    rows = []
    for line in (DATA / name).read_text().splitlines():
        if line and not line.startswith("#"):
            accepted, question = line.split("\t")
            rows.append((set(accepted.split("|")), question))
    return rows


def full_task_processor(**kwargs) -> BiomechGPTProcessor:
    """A processor that knows every corpus task, with the corpus's questions as its examples and its label names (as
    training saves them)."""
    base = make_tiny_model_and_processor()[1]
    return BiomechGPTProcessor(base.tokenizer, motion_token_offset=base.motion_token_offset, codebook_size=16,
                               task_kinds={name: _KINDS[task.kind] for name, task in TASKS.items()},
                               task_questions={t: [q.text for q in qs] for t, qs in QUESTIONS.items()},
                               **{"label_names": {t: label_names(t) for t, task in TASKS.items()
                                                  if task.kind == "classification"}, **kwargs})


@pytest.fixture(scope="module")
def processor():
    return full_task_processor()


def routing_scores(processor, rows) -> tuple[float, float, list[str]]:
    """(share routed right, share of off-topic questions refused, the misses)."""
    right, refused, off_topic, misses = 0, 0, 0, []
    for accepted, question in rows:
        task = processor.route_question(question).task or "none"
        right += task in accepted
        off_topic += accepted == {"none"}
        refused += accepted == {"none"} and task == "none"
        if task not in accepted:
            misses.append(f"{question!r}: {task}, wanted {'|'.join(sorted(accepted))}")
    return right / len(rows), refused / off_topic, misses


@pytest.mark.parametrize("name, floor, refused_floor", [
    ("routing_questions.tsv", 0.95, 1.0),
    ("routing_questions_unseen.tsv", 0.85, 1.0),
    ("routing_questions_unseen2.tsv", 0.95, 1.0),
    ("routing_questions_unseen3.tsv", 0.98, 1.0),
    ("routing_questions_unseen4.tsv", 0.98, 1.0),
    ("routing_questions_unseen5.tsv", 0.98, 1.0),
    ("routing_questions_unseen6.tsv", 0.98, 1.0),
    ("routing_questions_dev.tsv", 0.98, 1.0),
    ("routing_questions_unseen7.tsv", 0.98, 1.0),  # 58 of 66 before it was tuned on
    ("routing_questions_unseen8.tsv", 0.98, 1.0),  # 69 of 71 before it was tuned on
    ("routing_questions_unseen9.tsv", 0.98, 1.0),  # written blind: 74 of 80, 8 of 12 refused before it was tuned on
    ("routing_questions_unseen10.tsv", 0.98, 1.0),  # written blind: 87 of 96, 14 of 14 refused before it was tuned on
    ("routing_questions_unseen11.tsv", 0.98, 1.0),  # written blind: 89 of 100, 11 of 16 refused before it was tuned on
])
def test_natural_questions_are_routed_and_off_topic_ones_refused(processor, name, floor, refused_floor):
    rows = read_questions(name)
    right, refused, misses = routing_scores(processor, rows)
    print(f"\n{name}: {len(rows)} questions, {right:.1%} routed right, {refused:.0%} of off-topic refused; "
          f"misses: {misses}")
    assert right >= floor, misses
    assert refused >= refused_floor, misses


@pytest.fixture(scope="module")
def old_processor(processor, tmp_path_factory):
    """`processor` saved, with its processor_config.json as processors were saved before `label_names`, and loaded."""
    folder = tmp_path_factory.mktemp("old_processor")
    processor.save_pretrained(folder)
    config = json.loads((folder / "processor_config.json").read_text())
    assert config.pop("label_names") == processor.label_names
    (folder / "processor_config.json").write_text(json.dumps(config))
    return BiomechGPTProcessor.from_pretrained(folder)


def test_the_corpus_questions_are_routed_to_their_own_task(processor, old_processor):
    for router in (processor, old_processor):
        wrong = [(task, q.text, router.detect_task(q.text)) for task, qs in QUESTIONS.items() for q in qs
                 if router.detect_task(q.text) != task]
        assert wrong == []


def test_label_names_are_saved_and_an_old_processor_routes_as_before(processor, old_processor, tmp_path):
    """A processor saved before `label_names` loads, and with the package installed reads the corpus lexicon's label
    names, so it routes every question as a new one."""
    processor.save_pretrained(tmp_path)
    assert BiomechGPTProcessor.from_pretrained(tmp_path).label_names == processor.label_names
    assert "zimmer frame" in processor.label_names["assistive_device"]["walker"]
    assert old_processor.label_names is None
    assert old_processor.route_question("Does she use a zimmer frame?").task == "assistive_device"
    questions = [q for name in SETS for _, q in read_questions(name)]
    assert [old_processor.route_question(q) for q in questions] == [processor.route_question(q) for q in questions]


def test_an_old_processor_without_the_package_routes_without_label_names(processor, monkeypatch, tmp_path):
    monkeypatch.setattr(processing_biomechgpt, "_CORPUS_LEXICON_MODULE", "no_such_package.dataset_builder")
    old = full_task_processor(label_names=None)
    assert old.routing_label_names == {}
    assert old.route_question("Is this consistent with a CVA?").task is None  # a name only the lexicon knows
    assert old.route_question("Does she walk unassisted?").task == "assistive_device"  # an everyday wording
    assert old.route_question("What is the cadence?").task == "cadence"
    old.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "processor_config.json").read_text())["label_names"] == {}


REMOTE_ROUTING = textwrap.dedent("""
    import json, sys
    sys.modules["biomechgpt"] = None  # the package is not importable: the router must come from the folder
    from transformers import AutoProcessor
    processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
    questions = json.loads(open(sys.argv[2]).read())
    print(json.dumps({"module": type(processor).__module__,
                      "tasks": [processor.route_question(q).task for q in questions],
                      "notes": [processor.route_note(processor.route_question(q)) for q in questions]}))
""")


def test_remote_code_routes_like_the_package(processor, tmp_path):
    """A saved processor loaded as Hub remote code, without the biomechgpt package, routes every question of every
    set as the package does (its label names come from processor_config.json)."""
    processor.save_pretrained(tmp_path / "model")
    questions = [q for name in SETS for _, q in read_questions(name)]
    (tmp_path / "questions.json").write_text(json.dumps(questions))
    (tmp_path / "remote.py").write_text(REMOTE_ROUTING)
    env = {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PATH": "/usr/bin:/bin",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(tmp_path / "remote.py"), str(tmp_path / "model"),
                           str(tmp_path / "questions.json")], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])
    assert not remote["module"].startswith("biomechgpt")
    assert remote["tasks"] == [processor.route_question(q).task for q in questions]
    assert remote["notes"] == [processor.route_note(processor.route_question(q)) for q in questions]


@pytest.mark.parametrize("question, task", [
    ("Is this person walking normally?", "impairment"),
    ("How fast are they walking?", "walking_speed"),
    ("Describe this movement.", "summary"),
    ("Is this person running or walking?", "activity"),
    ("What is the weather today?", None),
])
def test_the_issue_17_questions(processor, question, task):
    assert processor.detect_task(question) == task


@pytest.mark.parametrize("question, task", [
    ("What is the patient busy with?", "activity"),  # "busy with": doing
    ("Does the gait show a deficit?", "impairment"),
    ("Is the weakness unilateral?", "impairment_side"),
    ("Which half is affected?", "impairment_side"),
    ("Does he walk unassisted?", "assistive_device"),
    ("Does she use a zimmer frame?", "assistive_device"),  # a name of a label in the corpus's lexicon
    ("Is this consistent with a CVA?", "diagnosis"),
    ("What is the rhythm of his steps?", "cadence"),
    ("How many mph does she walk?", "walking_speed"),
    ("What is the step size?", "stride_length"),
    ("Give me a quick recap.", "summary"),
    ("Is his walking OK?", "impairment"),
    ("Does the walking look stiff or awkward?", "impairment"),
    ("Is she putting less weight on one leg?", "impairment_side"),
    ("Is she hopping on one leg?", "activity"),  # "one leg" alone is no side
    ("Is the impairment on his left?", "impairment_side"),
    ("Is the person holding anything to help them walk?", "assistive_device"),
    ("Has he taken any tumbles in the past year?", "fall_history"),
    ("How quickly does she step?", "cadence"),  # the steps' rate, not the walking speed
    ("Is he walking slower than usual for his age?", "walking_speed"),
    ("How much ground does each step cover?", "stride_length"),
    ("What did we record for this patient?", "activity"),
])
def test_everyday_wordings_are_read_in_the_cues_words(processor, question, task):
    assert processor.route_question(question).task == task
    assert processor.detect_task(question) == task


@pytest.mark.parametrize("question, task", [
    ("How fast can a horse run?", None),
    ("How far can a human walk in a day?", None),
    ("Which walking aid should I buy?", None),
    ("What walking aid would you recommend for this patient?", "assistive_device"),
    ("Does this patient walk with a cane or a guide dog?", "assistive_device"),  # about the recorded person
    ("My dog limps on his back leg, what is wrong with his gait?", None),  # "his" is the dog's
    ("How long does it usually take to recover from a knee replacement?", None),  # general knowledge
    ("What are the main symptoms of Parkinson's disease?", None),
    ("Any signs of Parkinson's disease in this patient?", "diagnosis"),
])
def test_questions_about_another_being_or_a_product_are_refused(processor, question, task):
    assert processor.route_question(question).task == task


@pytest.mark.parametrize("question, task", [
    ("How fast can Usain Bolt run?", None),
    ("What's the best walking route in London?", None),
    ("Which side of the road do they drive on in Japan?", None),
    ("Does Mrs Jones use a cane?", "assistive_device"),  # a person named with a title is the recorded one
    ("Did Charlie Chaplin limp?", None),
    ("Does she limp like Charlie Chaplin?", "impairment"),  # points at the recording
    ("What is Eliud Kipchoge's cadence when he races?", None),  # someone else's trait, though "he" points
    ("Any sign of Huntington's disease?", "diagnosis"),  # an eponym
    ("What was the Timed Up and Go result?", "tug_time"),
])
def test_questions_about_someone_named_are_refused_unless_about_the_recording(processor, question, task):
    assert processor.detect_task(question) == task


@pytest.mark.parametrize("question, task", [
    ("Does she walk like an unimpaired adult?", "impairment"),  # "un" before a cue word
    ("Is the walking pattern unaffected?", "impairment"),
    ("How long did the square stepping test take?", "fsst_time"),  # an inflection of "square step"
    ("What was his speed?", "walking_speed"),  # a weak cue in a question about him
    ("Is this the right place to ask?", None),  # "right" needs a movement or a body part
])
def test_cue_words_match_their_forms_and_weak_ones_need_the_recording(processor, question, task):
    assert processor.detect_task(question) == task


@pytest.mark.parametrize("question, task", [
    ("Do you see signs of a movement problem?", "impairment"),
    ("What is being recorded in this session?", "activity"),
    ("Is this a romberg?", "activity"),  # a label's name only
    ("What's her name?", None),  # "name" asks the corpus's questions, it names no task
    ("Is walking good for you?", None),
    ("Does he use his phone a lot?", None),  # one word of two that a task knows is not enough
    ("Is this gait data complete?", None),  # "gait": every gait task knows it
    ("Is this a gait trial or something else?", "activity"),  # the kind of trial, set against another
])
def test_a_question_without_a_cue_goes_to_the_task_whose_vocabulary_it_uses(processor, question, task):
    assert processor.detect_task(question) == task


def test_an_ambiguous_question_says_which_task_it_took(processor):
    route = processor.route_question("How long did the test take?")
    assert route.ambiguous and {route.task, *route.alternatives} >= {"tug_time", "fsst_time"}
    note = processor.route_note(route)
    assert note.startswith("Answered as a question about the") and "could also be about" in note
    assert processor.route_note(processor.route_question("What is the cadence?")) is None


def test_a_refusal_lists_what_the_model_can_answer(processor):
    text = processor.refusal("What is the weather today?")
    assert "\n" not in text and len(text) < 400
    for title in ("the activity", "cadence", "walking speed", "the affected side", "a summary of the trial"):
        assert title in text


def test_a_task_the_model_does_not_know_is_never_chosen():
    processor = make_tiny_model_and_processor()[1]  # activity, cadence and summary only
    assert processor.detect_task("Which leg is weaker?") is None
    assert processor.route_question("Is the weakness bilateral?").task is None
    assert processor.route_question("Does she use a frame?").task is None
    assert processor.detect_task("Steps per minute?") == "cadence"
    assert "cadence" in processor.refusal() and "diagnosis" not in processor.refusal()


def test_the_model_routes_with_the_same_router():
    """`model.answer`, `answer_batch` and `answer_participant` route a question as `ask` and the chat page do: these
    wordings name their task only through the everyday wordings."""
    model, processor = make_tiny_model_and_processor()
    codes = [1, 2, 3, 4, 5, 6, 7, 8]
    questions = ["What is the patient busy with?", "What is the rhythm of his steps?"]
    assert [processor.detect_task(q) for q in questions] == ["activity", "cadence"]
    assert [a.task for a in model.answer(codes, questions, processor=processor)] == ["activity", "cadence"]
    assert [a.task for a in model.answer_batch([codes, codes], questions, processor=processor)] == [
        "activity", "cadence"]
    assert model.answer_participant([codes, codes[::-1]], questions[0], processor=processor).task == "activity"


def test_training_saves_the_corpus_label_names_with_the_processor(tmp_path):
    """Training gives the processor the corpus lexicon's label names (`corpus_task_metadata`), so a trained model's
    processor_config.json carries them to the Hub and its remote code routes "a zimmer frame" as the package does."""
    import pandas as pd

    from biomechgpt.training.train_lm import corpus_task_metadata

    frame = pd.DataFrame([
        {"task": "assistive_device", "question": "Which walking aid?", "answer": "A cane.", "target_label": "cane"},
        {"task": "assistive_device", "question": "Which walking aid?", "answer": "A walker.",
         "target_label": "walker"},
        {"task": "cadence", "question": "What is the cadence?", "answer": "About 100 steps/min.",
         "target_value": 100.0, "target_unit": "steps/min"},
    ])
    meta = corpus_task_metadata(frame)
    assert meta["label_names"] == {"assistive_device": label_names("assistive_device")}
    base = make_tiny_model_and_processor()[1]
    processor = BiomechGPTProcessor(base.tokenizer, motion_token_offset=base.motion_token_offset, **meta)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())["label_names"]
    assert "zimmer frame" in saved["assistive_device"]["walker"]
    assert BiomechGPTProcessor.from_pretrained(tmp_path).detect_task("Does she use a zimmer frame?") == (
        "assistive_device")
