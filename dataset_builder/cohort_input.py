"""Reading and checking the cohort folder the corpus is built from (the "Cohort folder" contract).

The tables are read here with pandas and checked against the label sets, so a wrong folder fails in a second with a
one-line message before any motion is tokenized. Motions are read through `biomechgpt.load_cohort`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from biomechgpt.labels import ACTIVITIES, AFFECTED_SIDES, ASSISTIVE_DEVICES, DIAGNOSES, SPLITS
from biomechgpt.processing.motion import Motion, MotionInputError

__all__ = ["CohortTables", "read_cohort_tables", "iter_cohort_motions", "PARTICIPANT_COLUMNS", "TRIAL_COLUMNS"]

# The columns the corpus reads (the contract has more).
PARTICIPANT_COLUMNS: tuple[str, ...] = (
    "participant_id", "split", "diagnosis", "impaired", "affected_side", "assistive_device", "fall_history",
)
TRIAL_COLUMNS: tuple[str, ...] = (
    "trial_id", "participant_id", "split", "activity", "n_frames", "duration_s", "cadence_steps_per_min",
    "walking_speed_m_s", "stride_length_m", "test_time_s",
)
_LABEL_COLUMNS = {
    "participants": {"split": SPLITS, "diagnosis": DIAGNOSES, "affected_side": AFFECTED_SIDES,
                     "assistive_device": ASSISTIVE_DEVICES},
    "trials": {"split": SPLITS, "activity": ACTIVITIES},
}


@dataclass
class CohortTables:
    """The cohort's two tables (pandas DataFrames), checked; `participants` is indexed by `participant_id`.
    `meta` is the simulator's `cohort.json` (seed, counts, hours), empty when the folder has none."""

    folder: Path
    participants: object
    trials: object
    meta: dict


def _fail(message: str) -> MotionInputError:
    return MotionInputError(" ".join(message.split()))


def read_cohort_tables(folder: str | Path) -> CohortTables:
    """Read `participants.parquet` and `trials.parquet` of a cohort folder and check them.

    Raises:
        `MotionInputError`: a one-line message naming the folder or file and what is wrong.
    """
    import pandas as pd

    folder = Path(folder)
    if not folder.exists():
        raise _fail(f"cohort folder {folder}: not found")
    if not folder.is_dir():
        raise _fail(f"cohort folder {folder}: not a folder")
    tables = {}
    for name, columns in (("participants", PARTICIPANT_COLUMNS), ("trials", TRIAL_COLUMNS)):
        path = folder / f"{name}.parquet"
        if not path.is_file():
            raise _fail(f"cohort folder {folder}: no {name}.parquet (write a cohort with `biomechgpt simulate`)")
        try:
            table = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise _fail(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from None
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise _fail(f"{path}: missing column(s) {', '.join(missing)}")
        if table.empty:
            raise _fail(f"{path}: no rows")
        for column, allowed in _LABEL_COLUMNS[name].items():
            bad = sorted(set(map(str, table[column])) - set(allowed))
            if bad:
                raise _fail(f"{path}: column {column} has unknown value(s) {', '.join(bad[:5])}; "
                            f"expected one of {', '.join(allowed)}")
        key = "participant_id" if name == "participants" else "trial_id"
        if table[key].isna().any() or table[key].duplicated().any():
            raise _fail(f"{path}: {key} must be unique and present in every row")
        tables[name] = table
    participants = tables["participants"].set_index("participant_id", drop=False)
    trials = tables["trials"]
    unknown = sorted(set(trials.participant_id) - set(participants.index))
    if unknown:
        names = ", ".join(map(str, unknown[:5]))
        raise _fail(f"{folder / 'trials.parquet'}: trials of unknown participant(s) {names}")
    crossed = trials.split.to_numpy() != participants.loc[trials.participant_id, "split"].to_numpy()
    if crossed.any():
        raise _fail(f"{folder / 'trials.parquet'}: trial {trials.trial_id[crossed].iloc[0]} is in another split than "
                    "its participant")
    if not (folder / "motions").is_dir():
        raise _fail(f"cohort folder {folder}: no motions/ folder")
    meta: dict = {}
    if (folder / "cohort.json").is_file():
        try:
            meta = json.loads((folder / "cohort.json").read_text())
        except ValueError as err:
            raise _fail(f"{folder / 'cohort.json'}: not valid JSON ({err})") from None
        if not isinstance(meta, dict):
            raise _fail(f"{folder / 'cohort.json'}: expected a JSON object")
    return CohortTables(folder, participants, trials, meta)


def iter_cohort_motions(folder: str | Path, trial_ids: Sequence[str] | None = None) -> Iterator[tuple[str, Motion]]:
    """`(trial_id, Motion)` pairs of the cohort's stored motions, through `biomechgpt.load_cohort`."""
    try:
        from biomechgpt.cohort import load_cohort
    except ModuleNotFoundError as err:
        if err.name != "biomechgpt.cohort":
            raise
        raise _fail("biomechgpt.cohort is not installed, so cohort motions cannot be read") from None
    cohort = load_cohort(folder)
    yield from cohort.iter_motions(list(trial_ids) if trial_ids is not None else None)
