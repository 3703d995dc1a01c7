"""The answer space of a QA corpus: each task's kind, the sentences a model answers it with, units, example questions
and label names, all learned from the corpus's training rows.

`build_dataset` writes it next to the shards as `DIR/answer_space.json`, and training hands it to the processor as it
stands (`load_answer_space`), so the corpus that worded the answers is the one place that says how they are worded.
A corpus folder built before the file existed gets the same answer space from its train split, by the same function.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .corpus import CorpusError, load_corpus
from .lexicon import label_names
from .tasks import convert_unit

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ANSWER_SPACE_FILE", "ANSWER_SPACE_KEYS", "MAX_GRID_VALUES", "corpus_task_metadata", "load_answer_space",
           "write_answer_space"]

ANSWER_SPACE_FILE = "answer_space.json"
ANSWER_SPACE_KEYS: tuple[str, ...] = ("task_kinds", "answer_candidates", "answer_log_priors", "task_units",
                                      "task_questions", "numeric_answers", "label_names")
"""The keys of `corpus_task_metadata`, which are `BiomechGPTProcessor` arguments of the same names."""


def corpus_task_metadata(frame: pd.DataFrame, *, max_questions: int = 200) -> dict[str, Any]:
    """What the processor needs to know about the tasks, learned from training rows: each task's kind, one answer
    sentence per label of closed-set tasks (with its share among that label's answers), units, example questions and
    the corpus lexicon's names of the closed-set tasks' labels (for routing questions that name one).

    The candidate sentences of a task share one answer template (see `_shared_answer_template`); within it, a label's
    candidate is the shortest among its frequent answers (at least half as frequent as the most frequent one), and
    its share among all of that label's answers corrects for the wording's frequency.

    Args:
        frame (`pd.DataFrame`): training rows of a QA corpus (`load_corpus(dir, "train")`).
        max_questions (`int`, defaults to 200): example questions kept per task, most frequent first.

    Returns:
        `dict` with the keys of `ANSWER_SPACE_KEYS`.
    """
    kinds: dict[str, str] = {}
    candidates: dict[str, dict[str, str]] = {}
    priors: dict[str, dict[str, float]] = {}
    units: dict[str, str] = {}
    questions: dict[str, list[str]] = {}
    numeric: dict[str, list[dict[str, Any]]] = {}
    for task, rows in sorted(frame.groupby("task"), key=lambda kv: kv[0]):
        has_value = rows["target_value"].notna().any()
        has_label = rows["target_label"].notna().any()
        if has_value:
            kinds[task] = "numeric"
            unit_counts = Counter(u for u in rows["target_unit"] if isinstance(u, str))
            if unit_counts:
                units[task] = sorted(unit_counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
                wordings = []
                for unit, count in sorted(unit_counts.items(), key=lambda kv: (kv[0] != units[task], -kv[1], kv[0])):
                    spec = _numeric_answer(rows[rows["target_unit"] == unit]) if count * 10 >= len(rows) else None
                    if spec is not None:
                        wordings.append(spec | {"scale": _unit_scale(unit, units[task])})
                if wordings and wordings[0]["scale"] == 1.0:
                    numeric[task] = wordings
        elif has_label and task != "summary":
            kinds[task] = "closed"
            candidates[task], priors[task] = {}, {}
            template = _shared_answer_template(rows)
            for label, label_rows in sorted(rows.groupby("target_label"), key=lambda kv: kv[0]):
                pool = label_rows if template is None else label_rows[label_rows["answer_template"] == template]
                counts = Counter(str(a).strip() for a in pool["answer"])
                top = max(counts.values())
                frequent = [a for a, c in counts.items() if c * 2 >= top]
                best = min(frequent, key=lambda a: (len(a), -counts[a], a))
                candidates[task][str(label)] = best
                priors[task][str(label)] = math.log(counts[best] / len(label_rows))
        else:
            kinds[task] = "free"
        q_counts = Counter(str(q).strip() for q in rows["question"])
        questions[task] = [q for q, _ in sorted(q_counts.items(), key=lambda kv: (-kv[1], kv[0]))][:max_questions]
    return {"task_kinds": kinds, "answer_candidates": candidates, "answer_log_priors": priors, "task_units": units,
            "task_questions": questions, "numeric_answers": numeric,
            "label_names": {task: label_names(task) for task, kind in kinds.items() if kind == "closed"}}


_ONE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_GRID_STEPS = (1, 2, 5)
MAX_GRID_VALUES = 150


def _numeric_answer(rows: pd.DataFrame) -> dict[str, Any] | None:
    """The answer sentence and value grid a numeric task is answered with (`numeric_answers` of the processor).

    The sentence is the most frequent wording among answers with one number, that number replaced by `{}`; the grid
    runs over the training values at that wording's precision, coarsened (x2, x5, x10, ...) to at most
    `MAX_GRID_VALUES` values so that scoring every value stays cheap."""
    shapes: Counter = Counter()
    for answer in rows["answer"].astype(str):
        numbers = _ONE_NUMBER.findall(answer)
        if len(numbers) != 1 or "{" in answer or "}" in answer:
            continue
        decimals = len(numbers[0].split(".")[1]) if "." in numbers[0] else 0
        shapes[(_ONE_NUMBER.sub("{}", answer.strip(), count=1), decimals)] += 1
    values = rows["target_value"].dropna().astype(float)
    if not shapes or values.empty:
        return None
    (template, decimals), _ = sorted(shapes.items(), key=lambda kv: (-kv[1], len(kv[0][0]), kv[0]))[0]
    base = 10.0 ** -decimals
    step = base
    for scale in (10 ** k * m for k in range(8) for m in _GRID_STEPS):
        step = base * scale
        low, high = math.floor(values.min() / step) * step, math.ceil(values.max() / step) * step
        if (high - low) / step + 1 <= MAX_GRID_VALUES:
            break
    return {"template": template, "decimals": decimals, "low": round(low, decimals), "high": round(high, decimals),
            "step": round(step, decimals)}


def _unit_scale(unit: str, canonical: str) -> float:
    """Factor from `unit` to `canonical` (1.0 for the same unit)."""
    return 1.0 if unit == canonical else float(convert_unit(1.0, unit, canonical))


def _shared_answer_template(rows: pd.DataFrame) -> Any:
    """The answer template that every label of a closed-set task was worded in, most frequent first, or `None`.

    Candidates cut from one template differ only in the label's words ("Activity: a walk." against "Activity: a
    run."), so ranking compares labels, not sentence shapes. Short forms from different templates ("A walk." against
    "Chair rises.") let the likelihood of each template's first words decide between labels; on the default corpus
    that cost 10-15 points of activity accuracy against greedy generation."""
    if "answer_template" not in rows or rows["answer_template"].isna().all():
        return None
    n_labels = rows["target_label"].nunique()
    covering = rows.groupby("answer_template")["target_label"].nunique()
    covering = covering[covering == n_labels]
    if covering.empty:
        return None
    counts = rows["answer_template"].value_counts()
    return sorted(covering.index, key=lambda t: (-counts[t], t))[0]


def write_answer_space(dataset_dir: str | Path, frame: pd.DataFrame | None = None) -> Path:
    """Write the answer space of a QA corpus folder to `DIR/answer_space.json`.

    Args:
        dataset_dir (`str` or `Path`): the corpus folder.
        frame (`pd.DataFrame`, *optional*): its train split, when already loaded; read from the folder otherwise.

    Returns:
        `Path` of the file written.

    Raises:
        [`CorpusError`]: the folder has no readable train split.
    """
    path = Path(dataset_dir) / ANSWER_SPACE_FILE
    space = corpus_task_metadata(load_corpus(dataset_dir, "train") if frame is None else frame)
    # json writes floats as their shortest repr, so the log-priors and grids read back bit for bit
    path.write_text(json.dumps(space, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_answer_space(dataset_dir: str | Path, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """The answer space of a QA corpus folder: `DIR/answer_space.json` as `build_dataset` wrote it, or, for a corpus
    built before that file existed, `corpus_task_metadata` of its train split.

    Args:
        dataset_dir (`str` or `Path`): the corpus folder.
        frame (`pd.DataFrame`, *optional*): its train split, when already loaded (used only without the file).

    Returns:
        `dict` with the keys of `ANSWER_SPACE_KEYS`.

    Raises:
        [`CorpusError`]: the file is not a JSON object of those keys, or, without it, the folder has no readable
        train split.
    """
    path = Path(dataset_dir) / ANSWER_SPACE_FILE
    if not path.exists():
        return corpus_task_metadata(load_corpus(dataset_dir, "train") if frame is None else frame)
    try:
        space = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CorpusError(f"{path}: unreadable answer space ({' '.join(str(err).split())})") from None
    if not isinstance(space, dict):
        raise CorpusError(f"{path}: the answer space is not a JSON object")
    missing = [key for key in ANSWER_SPACE_KEYS if key not in space]
    unknown = sorted(set(space) - set(ANSWER_SPACE_KEYS))
    if missing or unknown:
        problems = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"has unknown {', '.join(unknown)}"] if unknown else [])
        raise CorpusError(f"{path}: the answer space {' and '.join(problems)} (rebuild the corpus with biomechgpt "
                          "build-dataset)")
    not_objects = [key for key in ANSWER_SPACE_KEYS if not isinstance(space[key], dict)]
    if not_objects:
        raise CorpusError(f"{path}: {', '.join(not_objects)} of the answer space must be JSON objects")
    return space
