"""The answer space (`dataset_builder.answer_space`): the builder writes it with the corpus, training reads it back
exactly, a corpus built before the file existed gets the same one, and a broken file is one line naming it."""

from __future__ import annotations

import json
import shutil

import pytest

from biomechgpt.dataset_builder import build_dataset
from biomechgpt.dataset_builder.answer_space import (
    ANSWER_SPACE_FILE,
    ANSWER_SPACE_KEYS,
    corpus_task_metadata,
    load_answer_space,
    write_answer_space,
)
from biomechgpt.dataset_builder.corpus import CorpusError, load_corpus
from biomechgpt.errors import UsageError
from test_dataset_builder import FakeMotionTokenizer, write_fake_cohort
from test_train_helpers import CODEBOOK, make_corpus


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """A corpus folder as `build_dataset` writes it, from a tiny fake cohort."""
    root = tmp_path_factory.mktemp("built")
    return build_dataset(write_fake_cohort(root / "cohort"), None, root / "qa", tokenizer=FakeMotionTokenizer())


def test_the_builder_writes_the_answer_space_of_the_train_split(corpus_dir, tmp_path):
    derived = corpus_task_metadata(load_corpus(corpus_dir, "train"))
    written = json.loads((corpus_dir / ANSWER_SPACE_FILE).read_text(encoding="utf-8"))
    assert tuple(derived) == ANSWER_SPACE_KEYS
    assert derived["numeric_answers"] and derived["answer_log_priors"]  # floats that must survive JSON bit for bit
    assert written == derived
    assert load_answer_space(corpus_dir) == derived
    # a corpus folder built before the file existed: the same answer space, from its train split
    older = tmp_path / "older"
    shutil.copytree(corpus_dir, older)
    (older / ANSWER_SPACE_FILE).unlink()
    assert load_answer_space(older) == derived
    assert load_answer_space(older, load_corpus(older, "train")) == derived


def _edited_answer_space(folder):
    """The corpus's answer_space.json with the walking answer reworded (what no derivation from the rows gives)."""
    path = write_answer_space(folder)
    space = json.loads(path.read_text(encoding="utf-8"))
    space["answer_candidates"]["activity"]["walking"] = "A walk."
    path.write_text(json.dumps(space), encoding="utf-8")
    return space


def test_the_file_is_read_not_derived_again(tmp_path):
    folder = make_corpus(tmp_path / "qa")
    space = _edited_answer_space(folder)
    assert load_answer_space(folder, load_corpus(folder, "train")) == space


def test_training_answers_with_the_corpus_answer_space(tmp_path):
    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor
    from biomechgpt.training.train_lm import train_model

    folder = make_corpus(tmp_path / "qa")
    _edited_answer_space(folder)
    out = train_model(folder, "tiny-s", tmp_path / "model", codebook_size=CODEBOOK, max_steps=1, motion_input="codes",
                      batch_size=4, progress=False, tokenizer_vocab_size=300)
    processor = BiomechGPTProcessor.from_pretrained(out)
    assert processor.answer_candidates["activity"] == {"running": "Running.", "walking": "A walk."}


def test_a_cohort_without_training_participants_gets_no_answer_space(tmp_path):
    cohort = write_fake_cohort(tmp_path / "cohort", n_participants=4)  # validation and test only
    out = build_dataset(cohort, None, tmp_path / "qa", tokenizer=FakeMotionTokenizer())
    assert not (out / ANSWER_SPACE_FILE).exists()
    with pytest.raises(CorpusError, match="no train shards"):
        load_answer_space(out)


def test_a_release_carries_the_answer_space(corpus_dir, tmp_path):
    from biomechgpt.release.staging import build_dataset_release
    from biomechgpt.release.validation import validate_dataset_release

    staged = build_dataset_release(corpus_dir, tmp_path / "stage")
    assert (staged / ANSWER_SPACE_FILE).read_bytes() == (corpus_dir / ANSWER_SPACE_FILE).read_bytes()
    assert set(validate_dataset_release(staged)["splits"]) == {"train", "validation", "test"}


@pytest.mark.parametrize(("text", "message"), [
    ('{"task_kinds": ', "unreadable answer space \\(Expecting value: line 1"),
    ("[]", "the answer space is not a JSON object"),
    ("missing", "the answer space lacks label_names \\(rebuild the corpus"),
    ("extra", "the answer space has unknown answer_grid"),
    ("not an object", "task_units of the answer space must be JSON objects"),
])
def test_a_broken_answer_space_gets_one_line_that_names_the_file(tmp_path, text, message):
    folder = make_corpus(tmp_path / "qa")
    path = write_answer_space(folder)
    space = json.loads(path.read_text(encoding="utf-8"))
    if text == "missing":
        text = json.dumps({k: v for k, v in space.items() if k != "label_names"})
    elif text == "extra":
        text = json.dumps(space | {"answer_grid": {}})
    elif text == "not an object":
        text = json.dumps(space | {"task_units": ["steps/min"]})
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError, match=message) as caught:
        load_answer_space(folder)
    assert isinstance(caught.value, UsageError)  # printed as one line by the command line
    assert "\n" not in str(caught.value) and str(caught.value).startswith(f"{path}: ")
