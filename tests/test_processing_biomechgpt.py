"""BiomechGPTProcessor: motion splicing, answer-only labels, segment consistency, save/load, task routing."""

from __future__ import annotations

import pytest
import torch

import biomechgpt  # noqa: F401  (registers the Auto classes)
from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor
from test_train_helpers import CODEBOOK, make_motion, make_motion_tokenizer, make_tiny_model_and_processor

TURNS = [("What activity is the person performing?", "Walking."),
         ("What is the cadence?", "The cadence is about 100 steps/min.")]


@pytest.fixture(scope="module")
def processor():
    return make_tiny_model_and_processor()[1]


def test_motion_codes_are_spliced_between_the_markers(processor):
    ids = processor([3, 1, 4, 1, 5], "What is the cadence?", return_tensors=None)["input_ids"][0]
    start = ids.index(processor.motion_start_token_id)
    assert ids[start + 6] == processor.motion_end_token_id
    assert [i - processor.motion_token_offset for i in ids[start + 1: start + 6]] == [3, 1, 4, 1, 5]
    assert sum(i >= processor.motion_token_offset for i in ids) == 5


def test_labels_cover_only_the_answers(processor):
    example = processor.build_training_example([1, 2, 3], TURNS)
    assert len(example["labels"]) == len(example["input_ids"])
    answered = [i for i, label in zip(example["input_ids"], example["labels"]) if label != -100]
    assert [label for label in example["labels"] if label != -100] == answered
    text = processor.decode(answered, skip_special_tokens=False)
    assert text == "Walking.<|end|>\nThe cadence is about 100 steps/min.<|end|>\n"
    # no motion token and no question token carries loss
    assert all(label < processor.motion_token_offset for label in example["labels"])



def test_motion_labels_add_the_codes_and_end_marker_only(processor):
    plain = processor.build_training_example([1, 2, 3], TURNS)
    example = processor.build_training_example([1, 2, 3], TURNS, label_motion=True)
    assert example["input_ids"] == plain["input_ids"]
    added = [(i, label) for i, (label, old) in enumerate(zip(example["labels"], plain["labels"])) if label != old]
    start = example["input_ids"].index(processor.motion_start_token_id)
    assert [i for i, _ in added] == list(range(start + 1, start + 5))  # 3 codes, then </motion>
    assert [label - processor.motion_token_offset for _, label in added[:3]] == [1, 2, 3]
    assert added[3][1] == processor.motion_end_token_id


def test_segments_used_for_answering_match_training(processor):
    example = processor.build_training_example([7, 8, 9], TURNS[:1])
    pieces = processor.prefix_ids([7, 8, 9]) + processor.question_ids(TURNS[0][0]) + processor.answer_ids(TURNS[0][1])
    assert pieces == example["input_ids"]
    assert processor.prefix_ids([7, 8, 9])[-1] == processor.motion_end_token_id
    end = processor.tokenizer.convert_tokens_to_ids("<|end|>")
    assert end in processor.stop_token_ids


def test_long_motions_are_cropped_to_their_middle(processor):
    processor.max_motion_codes, saved = 4, processor.max_motion_codes
    try:
        assert processor.crop_codes(list(range(10))) == [3, 4, 5, 6]
        assert processor.encode_motion(torch.tensor([0, 1, 2])) == [0, 1, 2]
    finally:
        processor.max_motion_codes = saved


@pytest.mark.parametrize("bad, message", [([], "empty"), ([0, CODEBOOK], "must lie in"), ([-1], "must lie in")])
def test_bad_codes_are_refused(processor, bad, message):
    with pytest.raises(ValueError, match=message):
        processor.encode_motion(torch.tensor(bad, dtype=torch.long) if bad else bad)


def test_a_motion_needs_the_motion_tokenizer(processor):
    with pytest.raises(ValueError, match="no MotionTokenizer"):
        processor.encode_motion(make_motion())


@pytest.mark.parametrize("question, task", [
    ("what activity is this person performing", "activity"),
    ("How many steps per minute does she take?", "cadence"),
    ("Please describe the trial", "summary"),
    ("zzz qqq", None),
])
def test_questions_are_routed_to_tasks(processor, question, task):
    assert processor.detect_task(question) == task


def test_parse_answer_uses_the_corpus_parser_or_the_first_number(processor):
    label, value, unit = processor.parse_answer("cadence", "The cadence is about 104 steps/min.")
    assert value == pytest.approx(104.0) and unit == "steps/min"
    assert processor.parse_answer("activity", "Running.")[0] == "running"


def test_save_and_load_with_the_motion_tokenizer(tmp_path):
    from transformers import AutoProcessor

    _, processor = make_tiny_model_and_processor()
    processor.motion_tokenizer = make_motion_tokenizer()
    motion = make_motion()
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "motion_tokenizer" / "config.json").is_file()
    assert (tmp_path / "processor_config.json").is_file()
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, BiomechGPTProcessor)
    for name in ("motion_token_offset", "codebook_size", "max_motion_codes", "task_kinds", "answer_candidates",
                 "answer_log_priors", "task_units", "task_questions", "chat_template"):
        assert getattr(loaded, name) == getattr(processor, name), name
    assert loaded.encode_motion(motion) == processor.encode_motion(motion)
    assert loaded(motion, "What is the cadence?")["input_ids"].tolist() == \
        processor(motion, "What is the cadence?")["input_ids"].tolist()


def test_numeric_answers_validate_and_round_trip(tmp_path):
    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor

    model, processor = make_tiny_model_and_processor()
    wording = {"template": "About {} steps/min.", "decimals": 0, "low": 90, "high": 130, "step": 2, "scale": 1.0}
    kwargs = dict(motion_token_offset=processor.motion_token_offset, codebook_size=processor.codebook_size,
                  task_kinds=processor.task_kinds, task_units=processor.task_units)
    graded = BiomechGPTProcessor(processor.tokenizer, numeric_answers={"cadence": [wording]}, **kwargs)
    graded.save_pretrained(tmp_path)
    again = BiomechGPTProcessor.from_pretrained(tmp_path)
    assert again.numeric_answers == graded.numeric_answers
    assert again.numeric_candidates("cadence") == graded.numeric_candidates("cadence")
    assert graded.numeric_candidates("cadence")[0] == list(range(90, 131, 2))
    assert graded.numeric_text("cadence", 111.6) == "About 112 steps/min."
    bad = [({"cadence": wording}, "non-empty list"),
           ({"cadence": [wording | {"template": "About {} or {}"}]}, "exactly one {}"),
           ({"cadence": [wording | {"step": 0}]}, "step > 0"),
           ({"cadence": [wording | {"scale": -1}]}, "scale must be a positive"),
           ({"cadence": [wording | {"high": 1e6}]}, "more than 1000 values"),
           ({"cadence": [{"template": "About {}."}]}, "needs template")]
    for numeric, message in bad:
        with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
            BiomechGPTProcessor(processor.tokenizer, numeric_answers=numeric, **kwargs)

