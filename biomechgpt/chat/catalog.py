"""The trials the chat page can show: from a simulated cohort, a QA corpus, or both.

A cohort (`biomechgpt simulate`) has the motions and every label. A QA corpus (`biomechgpt build-dataset`) has each
trial's motion codes and the answers of its tasks; without a cohort its motions are shown decoded from the codes by
the model's MotionTokenizer. With both, motions and labels come from the cohort and the codes from the corpus (the
exact tokens the model was trained and evaluated on).

Labels of test-split trials are hidden unless `reveal=True`: the page is also a way to look at the held-out set, and a
user comparing the model against labels shown on screen should have asked for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biomechgpt.dataset_builder.corpus import load_corpus
from biomechgpt.dataset_builder.tasks import CLASSIFICATION_TASKS, NUMERIC_TASKS
from biomechgpt.labels import SPLITS
from biomechgpt.processing.motion import Motion, MotionInputError

__all__ = ["ANY", "LABEL_FIELDS", "PUBLIC_FIELDS", "TrialCatalog"]

ANY = "any"

# Shown for every trial.
PUBLIC_FIELDS: tuple[str, ...] = (
    "trial_id", "participant_id", "split", "duration_s", "n_frames", "has_arms", "has_lumbar",
    "age", "sex", "height_m", "mass_kg",
)
# Answers of the corpus tasks (and what gives them away): hidden for test-split trials unless revealed.
_COHORT_LABEL_FIELDS: tuple[str, ...] = (
    "activity", "speed_condition", "treadmill", "diagnosis", "severity", "impaired", "impairment", "affected_side",
    "impairment_side", "assistive_device", "fall_history", "cadence_steps_per_min", "walking_speed_m_s",
    "stride_length_m", "test_time_s", "tug_time_s", "fsst_time_s", "ten_m_walk_speed_m_s",
)
# ... and every closed-set and numeric task of the registry (a corpus-only catalog has a column per task)
LABEL_FIELDS: tuple[str, ...] = _COHORT_LABEL_FIELDS + tuple(
    t for t in (*CLASSIFICATION_TASKS, *NUMERIC_TASKS) if t not in _COHORT_LABEL_FIELDS)
# corpus task -> trial-table column it fills when the corpus is the only source
_CORPUS_LABEL_TASKS = CLASSIFICATION_TASKS
_CORPUS_VALUE_TASKS = NUMERIC_TASKS
_MAX_CHOICES = 300  # a dropdown with thousands of entries makes the page slow; filters narrow it down


class TrialCatalog:
    """The selectable trials with their metadata and motions.

    Args:
        cohort (*optional*): a loaded `Cohort` (`.participants`, `.trials`, `.motion(trial_id)`).
        corpus (`pd.DataFrame`, *optional*): the QA corpus rows.
        decode_codes (`Callable[[list[int]], Motion]`, *optional*): turns motion codes into a motion, for corpus
            trials without a cohort.
    """

    def __init__(self, cohort: Any = None, corpus: pd.DataFrame | None = None,
                 decode_codes: Callable[[list[int]], Motion] | None = None) -> None:
        self.cohort = cohort
        self.corpus = corpus
        self.decode_codes = decode_codes
        self._codes: dict[str, list[int]] = {}
        self.questions: dict[str, str] = {}
        tables = []
        if cohort is not None:
            trials = cohort.trials.copy()
            participants = cohort.participants.drop(columns=["split"], errors="ignore")
            tables.append(trials.merge(participants, on="participant_id", how="left"))
        if corpus is not None and len(corpus):
            by_trial = corpus.sort_values(["trial_id", "task"], kind="stable").groupby("trial_id", sort=False)
            if "motion_codes" in corpus.columns:
                self._codes = {t: [int(c) for c in rows["motion_codes"].iloc[0]] for t, rows in by_trial}
            # The corpus's own wording, one question per task (first train-split question, else first of any split).
            keys = ["_not_train", "id"] if "id" in corpus.columns else ["_not_train"]
            ordered = corpus.assign(_not_train=corpus["split"] != "train").sort_values(keys, kind="stable")
            self.questions = ordered.groupby("task", sort=False)["question"].first().to_dict()
            if cohort is None:
                tables.append(self._trials_from_corpus(corpus))
        if not tables:
            raise ValueError("a catalog needs a cohort or a QA corpus")
        # train, validation, test (then anything else), by trial id within a split
        split_rank = tables[0]["split"].map({s: i for i, s in enumerate(SPLITS)}).fillna(len(SPLITS))
        self.table = (tables[0].assign(_rank=split_rank).sort_values(["_rank", "trial_id"], kind="stable")
                      .drop(columns="_rank").reset_index(drop=True))
        self._index = {t: i for i, t in enumerate(self.table["trial_id"])}

    @classmethod
    def load(cls, cohort_dir: str | Path | None = None, dataset_dir: str | Path | None = None,
             decode_codes: Callable[[list[int]], Motion] | None = None) -> TrialCatalog:
        """Read a cohort folder and/or a QA corpus folder."""
        cohort = None
        if cohort_dir is not None:
            from biomechgpt.cohort import load_cohort

            cohort = load_cohort(cohort_dir)
        corpus = load_corpus(dataset_dir) if dataset_dir is not None else None
        return cls(cohort=cohort, corpus=corpus, decode_codes=decode_codes)

    @staticmethod
    def _trials_from_corpus(corpus: pd.DataFrame) -> pd.DataFrame:
        rows: dict[str, dict[str, Any]] = {}
        for record in corpus.itertuples(index=False):
            row = rows.setdefault(record.trial_id, {"trial_id": record.trial_id, "split": record.split,
                                                    "participant_id": getattr(record, "participant_id", None)})
            if record.task in _CORPUS_LABEL_TASKS and getattr(record, "target_label", None) is not None:
                row.setdefault(record.task, record.target_label)
            elif record.task in _CORPUS_VALUE_TASKS and getattr(record, "target_value", None) is not None:
                value = float(record.target_value)
                if math.isfinite(value):
                    unit = getattr(record, "target_unit", None)
                    row.setdefault(record.task, f"{value:g} {unit}" if unit else f"{value:g}")
        return pd.DataFrame(list(rows.values()))

    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, trial_id: object) -> bool:
        return trial_id in self._index

    def choices(self, column: str) -> list[str]:
        """The values of a filter column (activity, diagnosis, split) present in the catalog, plus `ANY`."""
        if column not in self.table.columns:
            return [ANY]
        values = {str(v) for v in self.table[column].dropna().unique()}
        known = [v for v in SPLITS if v in values] if column == "split" else []
        return [ANY] + known + sorted(values - set(known))

    def filter(self, activity: str = ANY, diagnosis: str = ANY, split: str = ANY, reveal: bool = False
               ) -> tuple[list[tuple[str, str]], int]:
        """Trials matching the filters, as dropdown `(label, trial_id)` pairs, and how many matched in all.

        A label filter never matches a test-split trial whose labels are hidden, so filtering cannot leak them.
        """
        table = self.table
        keep = np.ones(len(table), dtype=bool)
        hidden = (table["split"] == "test").to_numpy() & (not reveal)
        for column, wanted in (("activity", activity), ("diagnosis", diagnosis)):
            if wanted and wanted != ANY:
                if column not in table.columns:
                    keep &= False
                    continue
                keep &= (table[column].astype(str) == wanted).to_numpy() & ~hidden
        if split and split != ANY:
            keep &= (table["split"] == split).to_numpy()
        matched = table[keep]
        options = [(self._label(row, reveal), row["trial_id"]) for _, row in matched.head(_MAX_CHOICES).iterrows()]
        return options, int(keep.sum())

    def _label(self, row: pd.Series, reveal: bool) -> str:
        parts = [str(row["trial_id"]), str(row["split"])]
        if row["split"] != "test" or reveal:
            parts += [str(row[c]) for c in ("activity", "diagnosis") if c in row and isinstance(row[c], str)]
        return " · ".join(parts[:1] + [part.replace("_", " ") for part in parts[1:]])  # words, not snake_case

    def metadata(self, trial_id: str, reveal: bool = False) -> dict[str, Any]:
        """What the page shows about a trial: public fields always, labels unless it is a hidden test trial."""
        row = self._row(trial_id)
        show_labels = row["split"] != "test" or reveal
        fields: Sequence[str] = PUBLIC_FIELDS + (LABEL_FIELDS if show_labels else ())
        out = {}
        for name in fields:
            if name in row.index:
                value = row[name]
                if value is None or (isinstance(value, float) and not math.isfinite(value)):
                    continue
                out[name] = value.item() if isinstance(value, np.generic) else value
        if not show_labels:
            out["labels"] = "hidden (test split; tick 'reveal labels' to show)"
        return out

    def height_m(self, trial_id: str) -> float | None:
        row = self._row(trial_id)
        value = row.get("height_m")
        return float(value) if value is not None and np.isfinite(value) else None

    def codes(self, trial_id: str) -> list[int] | None:
        """The trial's motion codes from the QA corpus, if a corpus was given."""
        self._row(trial_id)
        return self._codes.get(trial_id)

    def motion(self, trial_id: str) -> Motion:
        """The trial's motion: from the cohort, else decoded from its corpus motion codes."""
        self._row(trial_id)
        if self.cohort is not None:
            return self.cohort.motion(trial_id)
        codes = self._codes.get(trial_id)
        if codes is None or self.decode_codes is None:
            raise MotionInputError(f"trial {trial_id}: no motion available (give a cohort, or a model whose "
                                   f"MotionTokenizer can decode the corpus codes)")
        return self.decode_codes(codes)

    def _row(self, trial_id: str) -> pd.Series:
        if trial_id not in self._index:
            raise KeyError(f"unknown trial {trial_id!r}")
        return self.table.iloc[self._index[trial_id]]
