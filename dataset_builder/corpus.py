"""The QA corpus folder as every later stage reads it: its columns and one `load_corpus`.

`build_dataset` writes `DIR/data/{split}-*.parquet`; training reads one split, the evaluation and the chat page read
all of them. They used to read the shards three ways with three sets of required columns and three kinds of error;
this module is the one reader, so a corpus folder that one stage accepts every stage accepts, and a broken one gets
the same one-line error everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from biomechgpt.errors import UsageError

from .tasks import TASK_NAMES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CORPUS_COLUMNS", "CorpusError", "load_corpus"]

CORPUS_COLUMNS: tuple[str, ...] = ("id", "trial_id", "split", "task", "question", "answer", "target_label",
                                   "target_value", "target_unit", "motion_codes")
"""The columns every reader of a corpus needs (the builder writes more: see `FEATURES`)."""


class CorpusError(UsageError, ValueError):
    """A QA corpus folder that cannot be read: a usage error for the command line (printed as one line), a
    `ValueError` for library callers."""


def load_corpus(dataset_dir: str | Path, split: str | None = None) -> pd.DataFrame:
    """The rows of a QA corpus folder: one split (`DIR/data/{split}-*.parquet`), or all of them.

    Args:
        dataset_dir (`str` or `Path`): a `biomechgpt build-dataset` folder.
        split (`str`, *optional*): "train", "validation" or "test"; all splits when `None`.

    Raises:
        [`CorpusError`]: the folder is missing, has no shards (of that split), lacks a column of `CORPUS_COLUMNS`,
        names a task the registry does not know, or the split has no rows.
    """
    import pandas as pd

    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise CorpusError(f"{folder}: QA corpus folder not found (build one with biomechgpt build-dataset)")
    pattern = "*.parquet" if split is None else f"{split}-*.parquet"
    shards = sorted((folder / "data").glob(pattern))
    if not shards:
        which = "no Parquet shards" if split is None else f"no {split} shards"
        raise CorpusError(f"{folder}: {which} under data/ (expected data/{pattern}; not a QA corpus folder?)")
    corpus = pd.concat([pd.read_parquet(path) for path in shards], ignore_index=True)
    missing = [c for c in CORPUS_COLUMNS if c not in corpus.columns]
    if missing:
        raise CorpusError(f"{folder}: QA corpus lacks column(s) {', '.join(missing)}")
    unknown = sorted(set(corpus["task"].astype(str)) - set(TASK_NAMES))
    if unknown:
        raise CorpusError(f"{folder}: unknown task(s) {', '.join(unknown)} in the QA corpus")
    if corpus.empty:
        raise CorpusError(f"{folder}: the {split or 'whole'} QA corpus has no rows")
    return corpus
