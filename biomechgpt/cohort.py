"""Reading a cohort folder written by `biomechgpt simulate` (layout in ARCHITECTURE.md, "Cohort folder").

Motions live in uncompressed `.npz` shards; `Cohort` memory-maps each shard's `values` member on first use, so
`cohort.motion(trial_id)` is a slice copy, and iterating a split touches only the pages it needs.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from biomechgpt.labels import SPLITS
from biomechgpt.processing.motion import CANONICAL_COORDINATES, CANONICAL_FRAME_RATE, Motion, MotionInputError

__all__ = ["Cohort", "load_cohort", "PARTICIPANT_COLUMNS", "TRIAL_COLUMNS"]

PARTICIPANT_COLUMNS = ("participant_id", "split", "age", "sex", "height_m", "mass_kg", "leg_length_m", "diagnosis",
                       "severity", "impaired", "affected_side", "assistive_device", "fall_history",
                       "fall_probability", "tug_time_s", "fsst_time_s", "ten_m_walk_speed_m_s")
TRIAL_COLUMNS = ("trial_id", "participant_id", "split", "activity", "speed_condition", "treadmill", "n_frames",
                 "duration_s", "has_arms", "has_lumbar", "cadence_steps_per_min", "walking_speed_m_s",
                 "stride_length_m", "test_time_s", "shard", "offset")


def _memmap_npz_member(path: Path, name: str) -> np.ndarray:
    """Memory-maps array `name` of an uncompressed `.npz`; falls back to reading it when it is compressed."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with archive.open(info) as member:
                return np.lib.format.read_array(member, allow_pickle=False)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise MotionInputError(f"{path}: damaged shard (bad local header for {name})")
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise MotionInputError(f"{path}: unsupported .npy version {version} for {name}")
        data_offset = f.tell()
    order = "F" if fortran else "C"
    return np.memmap(path, dtype=dtype, mode="r", offset=data_offset, shape=shape, order=order)


class Cohort:
    """A simulated cohort on disk.

    Attributes:
        directory (`Path`): the cohort folder.
        participants (`pandas.DataFrame`): one row per participant (`PARTICIPANT_COLUMNS` and generator columns).
        trials (`pandas.DataFrame`): one row per trial (`TRIAL_COLUMNS`, ground truth, generator columns).
        meta (`dict`): `cohort.json` (seed, counts, hours of motion), empty if absent.
    """

    def __init__(self, directory: str | Path):
        import pandas as pd

        directory = Path(directory)
        if not directory.is_dir():
            raise MotionInputError(f"{directory}: cohort folder not found")
        for name in ("participants.parquet", "trials.parquet"):
            if not (directory / name).is_file():
                raise MotionInputError(f"{directory}: not a cohort folder ({name} missing)")
        self.directory = directory
        self.participants = pd.read_parquet(directory / "participants.parquet")
        self.trials = pd.read_parquet(directory / "trials.parquet")
        for table, columns, what in ((self.participants, PARTICIPANT_COLUMNS, "participants"),
                                     (self.trials, TRIAL_COLUMNS, "trials")):
            missing = [c for c in columns if c not in table.columns]
            if missing:
                raise MotionInputError(f"{directory}: {what}.parquet lacks columns {', '.join(missing)}")
        meta_path = directory / "cohort.json"
        self.meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        self._row = {tid: i for i, tid in enumerate(self.trials["trial_id"])}
        self._shard_cols = (self.trials["shard"].to_numpy(), self.trials["offset"].to_numpy(),
                            self.trials["n_frames"].to_numpy())
        self._values: dict[int, np.ndarray] = {}
        self._masks: dict[int, tuple[np.ndarray, dict[int, int]]] = {}

    def __len__(self) -> int:
        return len(self.trials)

    def __repr__(self) -> str:
        hours = self.trials["duration_s"].sum() / 3600.0
        return (f"Cohort({str(self.directory)!r}, participants={len(self.participants)}, trials={len(self.trials)}, "
                f"hours={hours:.1f})")

    def _shard_path(self, shard: int) -> Path:
        return self.directory / "motions" / f"shard-{shard:05d}.npz"

    def _shard(self, shard: int) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        if shard not in self._values:
            path = self._shard_path(shard)
            if not path.is_file():
                raise MotionInputError(f"{path}: motion shard missing")
            self._values[shard] = _memmap_npz_member(path, "values")
            with np.load(path, allow_pickle=False) as data:
                masks, offsets = data["masks"], data["offsets"]
            self._masks[shard] = (masks, {int(o): i for i, o in enumerate(offsets)})
        masks, rows = self._masks[shard]
        return self._values[shard], masks, rows

    def motion(self, trial_id: str) -> Motion:
        """The canonical `Motion` of one trial (radians, meters, 30 Hz, 33 coordinates)."""
        try:
            row = self._row[trial_id]
        except KeyError:
            raise KeyError(f"trial {trial_id!r} not in cohort {self.directory}") from None
        shard, offset, n = (int(c[row]) for c in self._shard_cols)
        values, masks, rows = self._shard(shard)
        if offset + n > values.shape[0] or offset not in rows:
            raise MotionInputError(f"{self._shard_path(shard)}: trial {trial_id} lies outside the shard")
        record = self.trials.iloc[row]
        meta = {
            "source": f"{self.directory}#{trial_id}",
            "trial_id": trial_id,
            "participant_id": record["participant_id"],
            "activity": record["activity"],
            "units": "radians; meters for pelvis translations",
        }
        return Motion(list(CANONICAL_COORDINATES), np.array(values[offset:offset + n]), CANONICAL_FRAME_RATE,
                      masks[rows[offset]].copy(), meta)

    def iter_motions(self, trial_ids: Iterable[str] | None = None) -> Iterator[tuple[str, Motion]]:
        """Yields `(trial_id, Motion)` for `trial_ids` in the given order (all trials, in storage order, if None)."""
        ids = self.trials["trial_id"] if trial_ids is None else trial_ids
        for trial_id in ids:
            yield trial_id, self.motion(trial_id)

    def split_trials(self, split: str):
        """The rows of `trials` in `split` (train / validation / test)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        return self.trials[self.trials["split"] == split].reset_index(drop=True)

    def split_participants(self, split: str):
        """The rows of `participants` in `split`."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        return self.participants[self.participants["split"] == split].reset_index(drop=True)


def load_cohort(directory: str | Path) -> Cohort:
    """Opens a cohort folder written by `biomechgpt simulate` / `biomechgpt.simulate_cohort`.

    Example:
        >>> cohort = load_cohort("runs/default/cohort")
        >>> trial_id = cohort.split_trials("train")["trial_id"][0]
        >>> motion = cohort.motion(trial_id)  # canonical Motion, (frames, 33)
    """
    return Cohort(directory)
