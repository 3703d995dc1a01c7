"""Builders of motion files for the reader and `biomechgpt inspect` tests: realistic good files and one bad file per
failure the readers must report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["gait_columns", "write_mot", "write_csv", "BAD_CASES"]


def gait_columns(rate: float, seconds: float, *, knee_sign: float = 1.0, degrees: bool = True, seed: int = 0):
    """A walking-like trial: (time, {name: column}) with 1 Hz strides, knee flexion 5-60 degrees."""
    rng = np.random.default_rng(seed)
    n = int(round(rate * seconds))
    t = np.arange(n) / rate
    phase = 2 * np.pi * 1.0 * t
    scale = 1.0 if degrees else math.pi / 180.0
    knee = 5.0 + 27.5 * (1 - np.cos(phase)) + rng.normal(0, 0.1, n)  # 5..60 degrees
    cols = {
        "pelvis_tilt": 2.0 * np.sin(2 * phase) * scale,
        "pelvis_list": 3.0 * np.sin(phase) * scale,
        "pelvis_rotation": 5.0 * np.sin(phase + 0.4) * scale,
        "pelvis_tx": 1.3 * t,
        "pelvis_ty": 0.95 + 0.02 * np.sin(2 * phase),
        "hip_flexion_r": (10.0 + 25.0 * np.sin(phase)) * scale,
        "hip_flexion_l": (10.0 + 25.0 * np.sin(phase + np.pi)) * scale,
        "knee_angle_r": knee_sign * knee * scale,
        "knee_angle_l": knee_sign * (5.0 + 27.5 * (1 - np.cos(phase + np.pi))) * scale,
        "ankle_angle_r": 10.0 * np.sin(phase + 1.0) * scale,
        "ankle_angle_l": 10.0 * np.sin(phase + 1.0 + np.pi) * scale,
    }
    return t, cols


def write_mot(path: Path, t: np.ndarray, cols: dict[str, np.ndarray], *, header: list[str] | None = None,
              sep: str = "\t", in_degrees: str | None = "yes") -> Path:
    """Write an OpenSim-style .mot with the given header lines (default: version/nRows/nColumns/inDegrees)."""
    names = list(cols)
    if header is None:
        header = [path.stem, "version=1", f"nRows={len(t)}", f"nColumns={len(names) + 1}"]
        if in_degrees is not None:
            header.append(f"inDegrees={in_degrees}")
        header.append("endheader")
    table = np.column_stack([t, *[cols[n] for n in names]])
    lines = header + [sep.join(["time", *names])] + [sep.join(f"{v:.8f}" for v in row) for row in table]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_csv(path: Path, t: np.ndarray | None, cols: dict[str, np.ndarray]) -> Path:
    names = (["time"] if t is not None else []) + list(cols)
    arrays = ([t] if t is not None else []) + list(cols.values())
    rows = [",".join(f"{v:.8f}" for v in row) for row in np.column_stack(arrays)]
    path.write_text(",".join(names) + "\n" + "\n".join(rows) + "\n")
    return path


def _good(path: Path, **kwargs) -> Path:
    t, cols = gait_columns(50.0, 2.0)
    return write_mot(path, t, cols, **kwargs)


def _replace_line(path: Path, index: int, transform) -> Path:
    lines = path.read_text().splitlines()
    lines[index] = transform(lines[index])
    path.write_text("\n".join(lines) + "\n")
    return path


def _missing(d: Path) -> Path:
    return d / "does_not_exist.mot"


def _empty(d: Path) -> Path:
    (d / "empty.mot").write_bytes(b"")
    return d / "empty.mot"


def _whitespace(d: Path) -> Path:
    (d / "blank.mot").write_text("\n  \n\t\n")
    return d / "blank.mot"


def _header_only(d: Path) -> Path:
    path = d / "header_only.mot"
    path.write_text("trial\nversion=1\nnRows=0\nnColumns=3\ninDegrees=yes\nendheader\ntime\tknee_angle_r\thip_flexion_r\n")
    return path


def _no_columns(d: Path) -> Path:
    path = d / "no_columns.mot"
    path.write_text("trial\nversion=1\ninDegrees=yes\nendheader\n\n")
    return path


def _non_numeric(d: Path) -> Path:
    path = _good(d / "non_numeric.mot")
    # line 7 is the column line, line 8 the first data row; poison the 10th data row's knee_angle_r (column 8)
    return _replace_line(path, 16, lambda line: "\t".join("abc" if i == 8 else c for i, c in enumerate(line.split())))


def _ragged(d: Path) -> Path:
    path = _good(d / "ragged.mot")
    return _replace_line(path, 20, lambda line: "\t".join(line.split("\t")[:5]))


def _long_nan_gap(d: Path) -> Path:
    t, cols = gait_columns(50.0, 2.0)
    cols["knee_angle_r"][20:40] = np.nan  # 0.4 s
    return write_mot(d / "long_gap.mot", t, cols)


def _inf_gap(d: Path) -> Path:
    t, cols = gait_columns(50.0, 2.0)
    cols["hip_flexion_l"][30:60] = np.inf
    return write_mot(d / "inf_gap.mot", t, cols)


def _too_short(d: Path) -> Path:
    t, cols = gait_columns(50.0, 0.3)
    return write_mot(d / "short.mot", t, cols)


def _time_not_increasing(d: Path) -> Path:
    t, cols = gait_columns(50.0, 2.0)
    t = t.copy()
    t[40] = t[38]
    return write_mot(d / "time_back.mot", t, cols)


def _time_nan(d: Path) -> Path:
    t, cols = gait_columns(50.0, 2.0)
    t = t.copy()
    t[10] = np.nan
    return write_mot(d / "time_nan.mot", t, cols)


def _no_known_coordinate(d: Path) -> Path:
    t = np.arange(100) / 50.0
    return write_mot(d / "unknown.mot", t, {"foo": np.sin(t), "wrist_flex_r": np.cos(t)})


def _degrees_but_radians(d: Path) -> Path:
    t, cols = gait_columns(50.0, 2.0, degrees=False)
    return write_mot(d / "says_degrees.mot", t, cols, in_degrees="yes")


def _radians_but_degrees(d: Path) -> Path:
    t, cols = gait_columns(50.0, 2.0, degrees=True)
    return write_mot(d / "says_radians.mot", t, cols, in_degrees="no")


def _bad_in_degrees_flag(d: Path) -> Path:
    return _good(d / "flag.mot", in_degrees="maybe")


def _binary_nul(d: Path) -> Path:
    path = d / "binary.mot"
    path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)) + b"\x00")
    return path


def _undecodable(d: Path) -> Path:
    path = d / "latin.mot"
    path.write_bytes(b"trial\nendheader\ntime\tknee_angle_r\n" + b"0\t\xff\xfe\n" * 5)
    return path


def _mm_translation(d: Path) -> Path:
    t, cols = gait_columns(50.0, 2.0)
    cols["pelvis_ty"] = cols["pelvis_ty"] * 1000.0
    return write_mot(d / "millimeters.mot", t, cols)


def _unsupported_suffix(d: Path) -> Path:
    path = d / "motion.txt"
    path.write_text("time,knee_angle_r\n0,1\n")
    return path


def _csv_without_time(d: Path) -> Path:
    _, cols = gait_columns(50.0, 2.0)
    return write_csv(d / "no_time.csv", None, cols)


def _csv_without_header(d: Path) -> Path:
    path = d / "no_header.csv"
    path.write_text("\n".join(f"{i / 50:.3f},{i}" for i in range(100)) + "\n")
    return path


def _npz_missing_key(d: Path) -> Path:
    path = d / "partial.npz"
    np.savez(path, values=np.zeros((60, 2), dtype=np.float32))
    return path


def _npz_pickled(d: Path) -> Path:
    path = d / "pickled.npz"
    np.savez(path, values=np.zeros((60, 1)), coordinates=np.array([{"name": "knee_angle_r"}], dtype=object),
             frame_rate=30.0)
    return path


def _npz_not_zip(d: Path) -> Path:
    path = d / "fake.npz"
    path.write_text("time,knee_angle_r\n0,1\n")
    return path


# (id, builder(dir) -> path, fragment the one-line message must contain, extra load_motion kwargs)
BAD_CASES = [
    ("missing", _missing, "file not found", {}),
    ("empty", _empty, "empty file", {}),
    ("whitespace", _whitespace, "empty file", {}),
    ("header_only", _header_only, "header only", {}),
    ("no_column_line", _no_columns, "header only", {}),
    ("non_numeric", _non_numeric, "non-numeric value 'abc' at line 17, column 'knee_angle_r'", {}),
    ("ragged_row", _ragged, "line 21 has 5 values, expected 12", {}),
    ("long_nan_gap", _long_nan_gap, "20 NaN/inf values", {}),
    ("inf_gap", _inf_gap, "30 NaN/inf values", {}),
    ("too_short", _too_short, "only 0.300 s of data", {}),
    ("time_not_increasing", _time_not_increasing, "time is not strictly increasing at line 48 (data row 41)", {}),
    ("time_nan", _time_nan, "time column has 1 NaN/inf", {}),
    ("no_known_coordinate", _no_known_coordinate, "no known coordinate", {}),
    ("degrees_but_radians", _degrees_but_radians, "looks like radians", {}),
    ("radians_but_degrees", _radians_but_degrees, "looks like degrees", {}),
    ("bad_in_degrees_flag", _bad_in_degrees_flag, "inDegrees='maybe'", {}),
    ("binary", _binary_nul, "binary file", {}),
    ("undecodable", _undecodable, "non-UTF-8", {}),
    ("too_large", _good, "over the 1.0 kB limit", {"max_bytes": 1000}),
    ("millimeters", _mm_translation, "pelvis_ty", {}),
    ("unsupported_suffix", _unsupported_suffix, "unsupported file type '.txt'", {}),
    ("csv_without_time", _csv_without_time, "no 'time' column", {}),
    ("csv_without_header", _csv_without_header, "no header row", {}),
    ("npz_missing_key", _npz_missing_key, "lacks coordinates, frame_rate", {}),
    ("npz_pickled", _npz_pickled, "unreadable .npz", {}),
    ("npz_not_zip", _npz_not_zip, ".npz", {}),
]
