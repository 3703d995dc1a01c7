"""Byte-reproducible storage of a cohort: `.npz` motion shards and Parquet tables.

`numpy.savez` stamps each member with the current time, so two runs with the same seed would differ; this writer
fixes the timestamps. Members are stored uncompressed so that `biomechgpt.cohort` can memory-map them (noisy float32
joint angles shrink only ~10 % under deflate, not worth losing random access).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

__all__ = ["write_npz", "write_table", "SHARD_PATTERN"]

SHARD_PATTERN = "shard-{:05d}.npz"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes `arrays` as an uncompressed `.npz` (readable by `np.load`) with fixed member timestamps."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    tmp.replace(path)


def write_table(path: str | Path, table) -> None:
    """Writes a pandas DataFrame as Parquet without the index (pyarrow output has no timestamps)."""
    table.to_parquet(path, index=False, engine="pyarrow", compression="zstd")
