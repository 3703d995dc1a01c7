"""The QA corpus contract (`dataset_builder.corpus`): one reader with the same one-line errors for every stage."""

from __future__ import annotations

import pandas as pd
import pytest

from biomechgpt.dataset_builder.corpus import CORPUS_COLUMNS, CorpusError, load_corpus
from biomechgpt.errors import UsageError


def _row(task: str = "activity", split: str = "train") -> dict:
    return {"id": f"{split}-0", "trial_id": "T0", "split": split, "task": task, "question": "What activity?",
            "answer": "Walking.", "target_label": "walking", "target_value": None, "target_unit": None,
            "motion_codes": [1, 2, 3]}


def _corpus(folder, rows_by_split: dict[str, list[dict]]):
    (folder / "data").mkdir(parents=True)
    for split, rows in rows_by_split.items():
        pd.DataFrame(rows, columns=list(CORPUS_COLUMNS)).to_parquet(folder / "data" / f"{split}-00000.parquet")
    return folder


def test_one_split_or_all_of_them(tmp_path):
    folder = _corpus(tmp_path / "qa", {"train": [_row()], "test": [_row(split="test"), _row(split="test")]})
    assert len(load_corpus(folder, "train")) == 1
    assert len(load_corpus(folder, "test")) == 2
    assert sorted(load_corpus(folder)["split"]) == ["test", "test", "train"]


@pytest.mark.parametrize(("case", "message"), [
    ("no folder", "QA corpus folder not found"),
    ("no split", "no validation shards under data/"),
    ("no shards", "no Parquet shards under data/"),
    ("missing column", "QA corpus lacks column\\(s\\) motion_codes"),
    ("unknown task", "unknown task\\(s\\) gait_score"),
    ("empty split", "the train QA corpus has no rows"),
])
def test_a_broken_corpus_gets_one_line_that_names_it(tmp_path, case, message):
    folder, split = tmp_path / "qa", None
    if case == "no split":
        _corpus(folder, {"train": [_row()]})
        split = "validation"
    elif case == "no shards":
        (folder / "data").mkdir(parents=True)
    elif case == "missing column":
        _corpus(folder, {"train": [_row()]})
        pd.read_parquet(folder / "data" / "train-00000.parquet").drop(columns="motion_codes").to_parquet(
            folder / "data" / "train-00000.parquet")
    elif case == "unknown task":
        _corpus(folder, {"train": [_row(task="gait_score")]})
    elif case == "empty split":
        _corpus(folder, {"train": []})
        split = "train"
    with pytest.raises(CorpusError, match=message) as caught:
        load_corpus(folder, split)
    # the command line prints it as a usage error; library callers may catch a ValueError
    assert isinstance(caught.value, UsageError) and isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value) and ("qa" in str(caught.value))


def test_every_stage_reads_the_corpus_with_the_one_reader():
    from biomechgpt.chat import catalog
    from biomechgpt.evaluation import common
    from biomechgpt.training import train_lm

    assert catalog.load_corpus is common.load_corpus is train_lm.load_corpus is load_corpus
    assert common.REQUIRED_COLUMNS == CORPUS_COLUMNS


def test_the_metrics_know_the_tasks_of_the_registry():
    from biomechgpt.dataset_builder.tasks import TASKS
    from biomechgpt.metrics import CLASSIFICATION_TASKS, METRICS_BY_TASK, NUMERIC_TASKS, TEXT_TASKS

    assert list(METRICS_BY_TASK) == list(TASKS)
    assert CLASSIFICATION_TASKS == tuple(n for n, t in TASKS.items() if t.kind == "classification")
    assert NUMERIC_TASKS == tuple(n for n, t in TASKS.items() if t.kind == "numeric")
    assert TEXT_TASKS == ("summary",)
