"""Readers and writers that turn real motion files into canonical `Motion` objects.

`load_motion` reads OpenSim `.mot` / `.sto`, CSV with a header row, `.npz`, numpy arrays and `Motion` objects and
returns the canonical form every later stage expects: the 33 `CANONICAL_COORDINATES` in order, `CANONICAL_FRAME_RATE`
(30 Hz), radians and meters, knee flexion positive, a `mask` of the coordinates that were really recorded and a `meta`
dict saying what was found and detected. Bad input raises `MotionInputError` with one line naming the input and the
problem; nothing is silently guessed without being recorded in `meta`.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from biomechgpt.processing.motion import (
    CANONICAL_COORDINATES,
    CANONICAL_FRAME_RATE,
    TRANSLATION_COORDINATES,
    Motion,
    MotionInputError,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_GAP_SECONDS",
    "MIN_DURATION_SECONDS",
    "SUPPORTED_SUFFIXES",
    "load_motion",
    "inspect_motion",
    "save_motion",
]

DEFAULT_MAX_BYTES: int = 200 * 1024 * 1024
"""Files larger than this are refused (a 10-minute 250 Hz full-body `.mot` is about 60 MB)."""
MAX_GAP_SECONDS: float = 0.1
"""Runs of NaN/inf up to this long are linearly interpolated; longer runs are rejected."""
MIN_DURATION_SECONDS: float = 0.5
"""Shorter recordings are refused: the motion tokenizer needs at least a few codes of 4 frames each."""
SUPPORTED_SUFFIXES: tuple[str, ...] = (".mot", ".sto", ".csv", ".npz")

# Thresholds of the unit checks, in the file's own numbers. A joint angle beyond 3.5 rad (200 degrees) is not a
# human posture, so such numbers are degrees; pelvis_rotation is left out because it accumulates over turns.
_RADIANS_MAX_ABS = 3.5
# A whole recording in degrees whose every angle stays within +-3.2 (about pi) degrees is implausible; such numbers
# are radians.
_DEGREES_MIN_MAX_ABS = math.pi + 0.06
# Knee excursions below this (radians, about 10 degrees) carry no sign information.
_KNEE_SIGN_MIN_EXCURSION = math.radians(10.0)
# pelvis_ty is the pelvis height above the ground: about 1 m in meters, about 1000 in millimeters.
_PELVIS_TY_MAX_METERS = 5.0
# Anti-alias low-pass before downsampling, as a fraction of the target rate (0.4 * 30 Hz = 12 Hz, below Nyquist 15).
_ANTI_ALIAS_FRACTION = 0.4

_CANONICAL_INDEX = {name: i for i, name in enumerate(CANONICAL_COORDINATES)}
_SUBJECT_RE = re.compile(r"^\s*(?:subject|subject_?id|participant|participant_?id)\s*[=:]\s*(\S+)", re.IGNORECASE)
_KNEES = ("knee_angle_r", "knee_angle_l")


# --------------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------------


def load_motion(
    source: str | os.PathLike | np.ndarray | Motion,
    *,
    coordinates: list[str] | tuple[str, ...] | None = None,
    frame_rate: float | None = None,
    in_degrees: bool | None = None,
    knee_flexion: str = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Motion:
    """Load a motion from a file, an array or a `Motion` and return it in canonical form.

    Args:
        source (`str`, `os.PathLike`, `np.ndarray` or `Motion`):
            A path to an OpenSim `.mot` / `.sto` file, a `.csv` with a header row, or an `.npz` with `values`,
            `coordinates` and `frame_rate` (and optionally `mask`); or an array of shape `(frames, columns)`; or a
            `Motion` (re-canonicalised).
        coordinates (`list[str]`, *optional*):
            Column names of an array (required then) or of a CSV file without a header row. A column named `time`
            gives the time stamps.
        frame_rate (`float`, *optional*):
            Sampling rate in Hz, required for arrays and CSV files without a `time` column. When the input has time
            stamps as well, the two must agree within 1%.
        in_degrees (`bool`, *optional*):
            Whether the angles are in degrees. Default: the file's `inDegrees` header; detected from the values for
            CSV files without one; radians (SI) for arrays, `.npz` and `Motion`. A value that contradicts the numbers
            (degrees claimed but every angle within about +-pi, or radians claimed but a joint angle beyond 3.5) is an
            error rather than a guess.
        knee_flexion (`str`, *optional*, defaults to `"auto"`):
            Sign convention of `knee_angle_r/l` in the source: `"positive"` (Rajagopal 2016, OpenCap,
            AddBiomechanics), `"negative"` (gait2392 / gait2354 / Hamner family) or `"auto"` to detect it.
        max_bytes (`int`, *optional*, defaults to `DEFAULT_MAX_BYTES` (200 MB)):
            Files larger than this are refused.

    Returns:
        `Motion`: `coordinates == CANONICAL_COORDINATES`, `frame_rate == CANONICAL_FRAME_RATE`, float32 values in
        radians / meters with knee flexion positive; `mask` marks the coordinates present in the source (the others
        hold 0). `meta` holds `source`, `format`, `source_frame_rate`, `source_n_frames`, `source_duration_s`,
        `units` and `units_source`, `knee_convention` and `knee_convention_source`, `coordinates_found`,
        `coordinates_missing`, `columns_ignored`, `interpolated` (values filled per coordinate), `subject_id` (when the
        header names one) and `header` (the file's `key=value` lines).

    Knee sign rule (`knee_flexion="auto"`): after unit conversion, take the largest excursion of the knee angles (both
    sides together) in the positive direction and in the negative direction. Knee flexion dominates every movement
    that moves the knee (about 60 degrees in walking swing, 90+ in running, 20+ throughout crouch gait) while
    hyperextension stays within about 10-15 degrees, so the direction of the larger excursion is the flexion
    direction: negative means a gait2392-family file, whose knee columns are negated. When both excursions are under
    10 degrees (a standing trial) the sign cannot be told; the data are kept as they are and `meta` records
    `knee_convention="undetermined"`.

    Resampling: above 30 Hz the source is first low-passed at 12 Hz against aliasing (the zero-phase response of a
    forward-backward 4th-order Butterworth, as `scipy.signal.filtfilt` gives, applied by FFT), then linearly
    interpolated onto a 30 Hz grid starting at the first time stamp. Irregular time stamps are interpolated onto
    their median rate first. A source already uniformly at 30 Hz is taken as is.

    Raises:
        `MotionInputError`: one line naming the input and the problem (missing, empty, binary or oversized file,
        header without data, non-numeric cells, NaN/inf gaps over `MAX_GAP_SECONDS`, under `MIN_DURATION_SECONDS`,
        time not strictly increasing, no known coordinate, units contradicting the numbers).
    """
    if knee_flexion not in ("auto", "positive", "negative"):
        raise MotionInputError(f"knee_flexion must be 'auto', 'positive' or 'negative', got {knee_flexion!r}")
    if frame_rate is not None:
        try:
            frame_rate = float(frame_rate)
        except (TypeError, ValueError):
            raise MotionInputError(f"frame_rate must be a number, got {frame_rate!r}") from None
        if not math.isfinite(frame_rate) or frame_rate <= 0:
            raise MotionInputError(f"frame_rate must be a positive number, got {frame_rate}")

    if isinstance(source, Motion):
        table = _table_from_motion(source)
    elif isinstance(source, np.ndarray):
        table = _table_from_array(source, coordinates, frame_rate)
    elif isinstance(source, (str, os.PathLike)):
        table = _table_from_path(Path(source), coordinates, max_bytes)
    else:
        raise MotionInputError(
            f"cannot load a motion from {type(source).__name__}: expected a path, a numpy array or a Motion"
        )
    return _canonicalise(table, frame_rate=frame_rate, in_degrees=in_degrees, knee_flexion=knee_flexion)


def inspect_motion(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Load a motion file and summarise what was found.

    Args:
        path (`str` or `os.PathLike`): the file, as for `load_motion`.
        max_bytes (`int`, *optional*): size limit, as for `load_motion`.

    Returns:
        `dict` with `source`, `format`, `duration_s`, `source_frame_rate`, `frame_rate`, `source_n_frames`,
        `n_frames`, `coordinates_found`, `coordinates_missing`, `columns_ignored`, `units`, `units_source`,
        `knee_convention`, `knee_convention_source`, `interpolated` and `subject_id`.

    Raises:
        `MotionInputError`: as `load_motion`.
    """
    motion = load_motion(path, max_bytes=max_bytes)
    meta = motion.meta
    return {
        "source": meta["source"],
        "format": meta["format"],
        "duration_s": meta["source_duration_s"],
        "source_frame_rate": meta["source_frame_rate"],
        "frame_rate": motion.frame_rate,
        "source_n_frames": meta["source_n_frames"],
        "n_frames": motion.n_frames,
        "coordinates_found": list(meta["coordinates_found"]),
        "coordinates_missing": list(meta["coordinates_missing"]),
        "columns_ignored": list(meta["columns_ignored"]),
        "units": meta["units"],
        "units_source": meta["units_source"],
        "knee_convention": meta["knee_convention"],
        "knee_convention_source": meta["knee_convention_source"],
        "interpolated": dict(meta["interpolated"]),
        "subject_id": meta.get("subject_id"),
    }


def save_motion(motion: Motion, path: str | os.PathLike) -> Path:
    """Write a motion to `.mot` / `.sto`, `.csv` or `.npz` so that `load_motion` reads it back.

    Only the coordinates marked present in `motion.mask` are written (masked ones load back as missing). `.mot` and
    `.sto` are written Rajagopal-style: a `version=1 / nRows / nColumns / inDegrees=yes / endheader` header, a tab
    separated `time` column, angles in degrees with knee flexion positive. `.csv` holds a `time` column and SI values
    (radians, meters). `.npz` holds `values` (float32, SI), `coordinates`, `frame_rate`, `mask` and `meta_json`.

    Args:
        motion (`Motion`): the motion to write (any coordinates; SI units, knee flexion positive).
        path (`str` or `os.PathLike`): the file; its suffix picks the format.

    Returns:
        `Path`: the file written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise MotionInputError(f"{path}: cannot write {suffix or 'files without a suffix'!r}; use one of "
                               f"{', '.join(SUPPORTED_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npz":
        meta_json = json.dumps(motion.meta, default=str, sort_keys=True)
        with open(path, "wb") as handle:
            np.savez(handle, values=motion.values.astype(np.float32),
                     coordinates=np.array(motion.coordinates, dtype=str), frame_rate=np.float64(motion.frame_rate),
                     mask=motion.mask.astype(bool),
                     meta_json=np.array(meta_json))
        return path
    names = motion.present()
    columns = [motion.coordinates.index(n) for n in names]
    values = motion.values[:, columns].astype(np.float64)
    table = np.column_stack([motion.time, values])
    if suffix == ".csv":
        # %.9g round-trips float32 exactly; time stamps keep 12 significant digits
        fmt = ["%.12g"] + ["%.9g"] * len(names)
        np.savetxt(path, table, fmt=fmt, delimiter=",", header=",".join(["time", *names]), comments="")
        return path
    angle = np.array([n not in TRANSLATION_COORDINATES for n in names])
    table[:, 1:][:, angle] = np.degrees(table[:, 1:][:, angle])
    header = [path.stem, "version=1", f"nRows={motion.n_frames}", f"nColumns={len(names) + 1}", "inDegrees=yes"]
    if motion.meta.get("subject_id"):
        header.append(f"subject={motion.meta['subject_id']}")
    header += ["endheader", "\t".join(["time", *names])]
    fmt = ["%.8f"] + ["%.8f"] * len(names)
    np.savetxt(path, table, fmt=fmt, delimiter="\t", header="\n".join(header), comments="")
    return path


# --------------------------------------------------------------------------------------------------------------------
# Readers: each returns a raw table (column names, values in the source's own units, optional time stamps)
# --------------------------------------------------------------------------------------------------------------------


class _Table:
    """A parsed source before canonicalisation."""

    def __init__(self, name: str, fmt: str, columns: list[str], data: np.ndarray, *, time: np.ndarray | None = None,
                 frame_rate: float | None = None, in_degrees: bool | None = None, units_source: str = "detected",
                 header: dict[str, str] | None = None, subject_id: str | None = None,
                 mask: np.ndarray | None = None, first_data_line: int | None = None) -> None:
        self.name = name
        self.format = fmt
        self.columns = columns
        self.data = data  # (frames, columns) float64
        self.time = time
        self.frame_rate = frame_rate
        self.in_degrees = in_degrees
        self.units_source = units_source
        self.header = header or {}
        self.subject_id = subject_id
        self.mask = mask  # columns known to be absent (from a Motion or .npz mask)
        self.first_data_line = first_data_line  # 1-based file line of the first data row, for error messages


def _table_from_motion(motion: Motion) -> _Table:
    name = str(motion.meta.get("source", "motion"))
    table = _Table(name, motion.meta.get("format", "motion"), list(motion.coordinates),
                   motion.values.astype(np.float64), frame_rate=motion.frame_rate, in_degrees=False,
                   units_source="SI (Motion)", mask=np.asarray(motion.mask, dtype=bool),
                   subject_id=motion.meta.get("subject_id"))
    table.header = dict(motion.meta.get("header", {}))
    return table


def _table_from_array(array: np.ndarray, coordinates, frame_rate: float | None) -> _Table:
    name = "array"
    if coordinates is None:
        raise MotionInputError(f"{name}: coordinates= (one name per column) is required for an array")
    if frame_rate is None and "time" not in [str(c).strip().lower() for c in coordinates]:
        raise MotionInputError(f"{name}: frame_rate= is required for an array without a 'time' column")
    if array.ndim != 2:
        raise MotionInputError(f"{name}: expected shape (frames, columns), got {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise MotionInputError(f"{name}: expected real numbers, got dtype {array.dtype}")
    columns = [str(c) for c in coordinates]
    if len(columns) != array.shape[1]:
        raise MotionInputError(f"{name}: {array.shape[1]} columns but {len(columns)} coordinate names")
    return _Table(name, "array", columns, array.astype(np.float64), in_degrees=False, units_source="SI (array)")


def _table_from_path(path: Path, coordinates, max_bytes: int) -> _Table:
    name = str(path)
    if not path.exists():
        raise MotionInputError(f"{name}: file not found")
    if path.is_dir():
        raise MotionInputError(f"{name}: is a directory, not a motion file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise MotionInputError(f"{name}: unsupported file type {suffix or '(no suffix)'!r}; expected one of "
                               f"{', '.join(SUPPORTED_SUFFIXES)}")
    size = path.stat().st_size
    if size > max_bytes:
        raise MotionInputError(f"{name}: file is {_human_bytes(size)}, over the {_human_bytes(max_bytes)} limit "
                               "(raise it with max_bytes=, or --max-mb on the command line)")
    if size == 0:
        raise MotionInputError(f"{name}: empty file")
    if suffix == ".npz":
        if coordinates is not None:
            raise MotionInputError(f"{name}: coordinates= applies to arrays and header-less CSV, not .npz")
        return _read_npz(path)
    raw = _check_text(name, path.read_bytes())
    if raw.isspace():
        raise MotionInputError(f"{name}: empty file (only whitespace)")
    if suffix == ".csv":
        return _read_csv(name, raw.decode("utf-8"), coordinates)
    if coordinates is not None:
        raise MotionInputError(f"{name}: coordinates= applies to arrays and header-less CSV, not {suffix}")
    return _read_opensim(name, raw, suffix.lstrip("."))


def _human_bytes(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _check_text(name: str, raw: bytes) -> bytes:
    """Refuse binary and non-UTF-8 files; return the bytes without a BOM and with `\n` line ends."""
    if b"\x00" in raw:
        raise MotionInputError(f"{name}: binary file (contains NUL bytes), expected a text motion file")
    sample = raw[:65536]
    control = sum(sample.count(bytes([c])) for c in range(32) if c not in (9, 10, 12, 13))
    if control > max(8, len(sample) // 100):
        raise MotionInputError(f"{name}: binary file ({control} control bytes), expected a text motion file")
    if not raw.isascii():  # isascii is a fast scan; only non-ASCII files pay for a full decode
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise MotionInputError(f"{name}: binary or non-UTF-8 file (undecodable byte at offset {err.start}), "
                                   "expected a text motion file") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if b"\n" not in raw and b"\r" in raw:  # classic Mac line endings
        raw = raw.replace(b"\r", b"\n")
    return raw


def _iter_lines(raw: bytes):
    """Yield `(line_number, line, offset_after_line)` lazily, so the header is read without splitting the body."""
    position, number = 0, 0
    while position < len(raw):
        newline = raw.find(b"\n", position)
        stop = len(raw) if newline < 0 else newline + 1
        number += 1
        yield number, raw[position:stop].decode("utf-8").rstrip("\r\n"), stop
        position = stop


def _read_opensim(name: str, raw: bytes, fmt: str) -> _Table:
    # The header ends at `endheader`; files without one start their column line with `time`. Only the lines up to the
    # column line are split in Python; the body goes to numpy's C reader as one string.
    header_lines: list[str] = []
    column_line = None
    saw_end = False
    body_offset = len(raw)
    for number, line, after in _iter_lines(raw):
        stripped = line.strip()
        if not saw_end:
            if stripped.lower() == "endheader":
                saw_end = True
                continue
            if stripped.split()[:1] and stripped.split()[0].lower() == "time":
                saw_end = True
            else:
                header_lines.append(stripped)
                continue
        if stripped:
            column_line, columns, body_offset = number, stripped.split(), after
            break
    if not saw_end:
        raise MotionInputError(f"{name}: no 'endheader' line and no column line starting with 'time'")
    if column_line is None:
        raise MotionInputError(f"{name}: header only, no column names and no data rows")
    header: dict[str, str] = {}
    subject_id = None
    for stripped in header_lines:
        match = _SUBJECT_RE.match(stripped)
        if match and subject_id is None:
            subject_id = match.group(1)
        if "=" in stripped:
            key, _, value = stripped.partition("=")
            if key.strip() and " " not in key.strip():
                header[key.strip()] = value.strip()
    in_degrees = None
    flag = next((v for k, v in header.items() if k.lower() == "indegrees"), None)
    if flag is not None:
        if flag.lower() in ("yes", "true", "1"):
            in_degrees = True
        elif flag.lower() in ("no", "false", "0"):
            in_degrees = False
        else:
            raise MotionInputError(f"{name}: inDegrees={flag!r} in the header, expected yes or no")
    body = raw[body_offset:]
    if not body or body.isspace():
        raise MotionInputError(f"{name}: header only, no data rows")
    data = _parse_numeric(name, body, columns, column_line + 1, delimiter=None)
    return _Table(name, fmt, columns, data, in_degrees=in_degrees,
                  units_source="header" if in_degrees is not None else "detected", header=header,
                  subject_id=subject_id, first_data_line=column_line + 1)


def _parse_numeric(name: str, body: str | bytes, columns: list[str], first_line: int, delimiter: str | None
                   ) -> np.ndarray:
    """Parse whitespace- or delimiter-separated numbers with numpy's C reader; locate any bad cell for the error."""
    # bytes go in as BytesIO: wrapping a large str in StringIO costs more than a quarter of the whole parse
    handle = io.BytesIO(body) if isinstance(body, bytes) else io.StringIO(body)
    try:
        data = np.loadtxt(handle, dtype=np.float64, delimiter=delimiter, ndmin=2, comments=None, encoding="utf-8")
    except ValueError as err:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        raise MotionInputError(_locate_bad_cell(name, text, columns, first_line, delimiter, err)) from None
    if data.shape[0] == 0:
        raise MotionInputError(f"{name}: header only, no data rows")
    if data.shape[1] != len(columns):
        raise MotionInputError(f"{name}: data rows have {data.shape[1]} values but the column line names "
                               f"{len(columns)} columns")
    return data


def _locate_bad_cell(name: str, body: str, columns: list[str], first_line: int, delimiter: str | None,
                     err: Exception) -> str:
    for offset, line in enumerate(body.splitlines()):
        if not line.strip():
            continue
        cells = line.split(delimiter) if delimiter else line.split()
        lineno = first_line + offset
        if len(cells) != len(columns):
            return f"{name}: line {lineno} has {len(cells)} values, expected {len(columns)} (one per column)"
        for column, cell in zip(columns, cells):
            try:
                float(cell)
            except ValueError:
                return f"{name}: non-numeric value {cell.strip()[:40]!r} at line {lineno}, column {column!r}"
    return f"{name}: could not parse the data rows ({' '.join(str(err).split())})"


def _read_csv(name: str, text: str, coordinates) -> _Table:
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip())
    head = lines[first]
    delimiter = "," if "," in head else (";" if ";" in head else ("\t" if "\t" in head else None))
    cells = [c.strip().strip('"').strip("'") for c in (head.split(delimiter) if delimiter else head.split())]
    numeric_header = all(_is_number(c) for c in cells)
    if numeric_header:
        if coordinates is None:
            raise MotionInputError(f"{name}: no header row with column names; pass coordinates= to name the columns")
        columns = [str(c) for c in coordinates]
        body_start = first
    else:
        if coordinates is not None:
            raise MotionInputError(f"{name}: the file has a header row; coordinates= is only for header-less CSV")
        columns = cells
        body_start = first + 1
    body = "\n".join(lines[body_start:])
    if not body.strip():
        raise MotionInputError(f"{name}: header only, no data rows")
    if delimiter is not None:
        # Empty cells are missing values in CSV (spreadsheets write them): NaN, then the gap rules apply.
        d = re.escape(delimiter)
        body = re.sub(rf"^(?={d})|(?<={d})(?={d}|$)", "nan", body, flags=re.MULTILINE)
    data = _parse_numeric(name, body, columns, body_start + 1, delimiter=delimiter)
    return _Table(name, "csv", columns, data, first_data_line=body_start + 1)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_npz(path: Path) -> _Table:
    name = str(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            missing = [k for k in ("values", "coordinates", "frame_rate") if k not in keys]
            if missing:
                raise MotionInputError(f"{name}: .npz lacks {', '.join(missing)} (needs values, coordinates, "
                                       "frame_rate)")
            values = archive["values"]
            coordinates = archive["coordinates"]
            rate = archive["frame_rate"]
            mask = archive["mask"] if "mask" in keys else None
            meta_json = str(archive["meta_json"]) if "meta_json" in keys else None
    except MotionInputError:
        raise
    except ValueError as err:
        if "pickle" in str(err):  # object arrays or a pickle file: loading them could run code, so we refuse
            raise MotionInputError(f"{name}: unreadable .npz (it holds pickled objects, which are refused; store "
                                   "values, coordinates and frame_rate as plain arrays)") from None
        raise MotionInputError(f"{name}: unreadable .npz ({' '.join(str(err).split())[:120]})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise MotionInputError(f"{name}: not a valid .npz archive ({type(err).__name__})") from None
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.number):
        raise MotionInputError(f"{name}: 'values' must be a 2-D numeric array, got {values.dtype} {values.shape}")
    if coordinates.ndim != 1 or coordinates.dtype.kind not in "US" or len(coordinates) != values.shape[1]:
        raise MotionInputError(f"{name}: 'coordinates' must be {values.shape[1]} strings, one per column of values")
    if rate.size != 1 or not np.issubdtype(rate.dtype, np.number) or not float(rate) > 0:
        raise MotionInputError(f"{name}: 'frame_rate' must be one positive number")
    if mask is not None and (mask.shape != (values.shape[1],)):
        raise MotionInputError(f"{name}: 'mask' must have one entry per coordinate")
    subject_id = None
    if meta_json:
        try:
            subject_id = json.loads(meta_json).get("subject_id")
        except (ValueError, AttributeError):
            subject_id = None
    if values.shape[0] == 0:
        raise MotionInputError(f"{name}: no frames in 'values'")
    return _Table(name, "npz", [str(c) for c in coordinates], values.astype(np.float64), frame_rate=float(rate),
                  in_degrees=False, units_source="SI (npz)", mask=None if mask is None else mask.astype(bool),
                  subject_id=subject_id)


# --------------------------------------------------------------------------------------------------------------------
# Canonicalisation
# --------------------------------------------------------------------------------------------------------------------


def _canonicalise(table: _Table, *, frame_rate: float | None, in_degrees: bool | None, knee_flexion: str) -> Motion:
    name = table.name
    lowered = [_column_key(c) for c in table.columns]
    seen: set[str] = set()
    for column in lowered:
        if column in seen:
            raise MotionInputError(f"{name}: column {column!r} appears twice")
        seen.add(column)
    data = table.data
    n_rows = data.shape[0]

    # --- time axis ---
    time = table.time
    if "time" in lowered:
        time = data[:, lowered.index("time")]
    if time is not None:
        bad = int((~np.isfinite(time)).sum())
        if bad:
            raise MotionInputError(f"{name}: time column has {bad} NaN/inf values")
        if n_rows >= 2:
            steps = np.diff(time)
            if (steps <= 0).any():
                row = int(np.argmax(steps <= 0)) + 1
                raise MotionInputError(f"{name}: time is not strictly increasing at {_row_label(table, row)} "
                                       f"(t={time[row]:g} after t={time[row - 1]:g})")
            measured = 1.0 / float(np.median(steps))
            if frame_rate is not None and abs(measured - frame_rate) > 0.01 * frame_rate:
                raise MotionInputError(f"{name}: frame_rate={frame_rate:g} contradicts the time column "
                                       f"({measured:.3f} Hz)")
            source_rate = measured
        else:
            source_rate = frame_rate or table.frame_rate
            if source_rate is None:
                raise MotionInputError(f"{name}: a single row of data is under {MIN_DURATION_SECONDS} s")
    else:
        source_rate = frame_rate or table.frame_rate
        if source_rate is None:
            raise MotionInputError(f"{name}: no 'time' column; pass frame_rate= to give the sampling rate")
        time = np.arange(n_rows, dtype=np.float64) / source_rate
    source_rate = _tidy_rate(source_rate)
    duration = n_rows / source_rate if n_rows < 2 else float(time[-1] - time[0]) + 1.0 / source_rate
    if duration < MIN_DURATION_SECONDS - 1e-9:
        raise MotionInputError(f"{name}: only {duration:.3f} s of data ({n_rows} rows at {source_rate:g} Hz), "
                               f"need at least {MIN_DURATION_SECONDS} s")

    # --- columns ---
    absent = set()
    if table.mask is not None:
        absent = {lowered[i] for i in np.flatnonzero(~table.mask)}
    found = [c for c in CANONICAL_COORDINATES if c in lowered and c not in absent]
    ignored = [table.columns[i] for i, c in enumerate(lowered)
               if c != "time" and c not in _CANONICAL_INDEX and c not in absent]
    if not found:
        examples = ", ".join(repr(c) for c in table.columns[:5] if c.strip().lower() != "time")
        raise MotionInputError(f"{name}: no known coordinate among {len(table.columns)} columns "
                               f"({examples or 'none'}); expected OpenSim names such as 'knee_angle_r'")
    values = data[:, [lowered.index(c) for c in found]].copy()  # (frames, found)

    # --- NaN / inf: short gaps interpolated, long ones rejected, all-empty columns treated as not recorded ---
    values, interpolated, emptied = _fill_gaps(name, values, found, source_rate)
    if emptied:
        keep = [i for i, c in enumerate(found) if c not in emptied]
        found = [found[i] for i in keep]
        values = values[:, keep]
        if not found:
            raise MotionInputError(f"{name}: every known coordinate is entirely NaN/inf")

    # --- units ---
    angle_idx = [i for i, c in enumerate(found) if c not in TRANSLATION_COORDINATES]
    units_source = table.units_source
    claimed = table.in_degrees
    if in_degrees is not None:
        claimed, units_source = bool(in_degrees), "argument"
    degrees = _check_units(name, values, found, angle_idx, claimed, units_source)
    if claimed is None:
        units_source = "detected"
    if degrees and angle_idx:
        values[:, angle_idx] = np.radians(values[:, angle_idx])
    if "pelvis_ty" in found:
        height = float(np.median(np.abs(values[:, found.index("pelvis_ty")])))
        if height > _PELVIS_TY_MAX_METERS:
            raise MotionInputError(f"{name}: pelvis_ty is about {height:g}, not a height in meters "
                                   "(millimeters? translations must be in meters)")

    # --- knee sign ---
    convention, convention_source = _knee_convention(values, found, knee_flexion)
    if convention == "negative":
        for knee in _KNEES:
            if knee in found:
                values[:, found.index(knee)] *= -1.0

    # --- resample to the canonical rate ---
    resampled = _resample(values, time, source_rate, CANONICAL_FRAME_RATE)
    canonical = np.zeros((resampled.shape[0], len(CANONICAL_COORDINATES)), dtype=np.float32)
    canonical[:, [_CANONICAL_INDEX[c] for c in found]] = resampled
    mask = np.zeros(len(CANONICAL_COORDINATES), dtype=bool)
    mask[[_CANONICAL_INDEX[c] for c in found]] = True

    meta = {
        "source": name,
        "format": table.format,
        "source_frame_rate": source_rate,
        "source_n_frames": n_rows,
        "source_duration_s": round(duration, 6),
        "units": "degrees" if degrees else "radians",
        "units_source": units_source,
        "knee_convention": convention,
        "knee_convention_source": convention_source,
        "coordinates_found": found,
        "coordinates_missing": [c for c in CANONICAL_COORDINATES if c not in found],
        "columns_ignored": ignored,
        "coordinates_all_nan": sorted(emptied),
        "interpolated": interpolated,
        "header": dict(table.header),
    }
    if table.subject_id:
        meta["subject_id"] = str(table.subject_id)
    return Motion(list(CANONICAL_COORDINATES), canonical, CANONICAL_FRAME_RATE, mask, meta)


def _column_key(column: str) -> str:
    """Lower-case name; OpenSim 4 state files name coordinates `/jointset/knee_r/knee_angle_r/value`."""
    key = column.strip().lower()
    if key.startswith("/") and key.endswith("/value"):
        key = key.rsplit("/", 2)[-2]
    return key


def _row_label(table: _Table, row: int) -> str:
    # file line numbers assume no blank lines inside the data, as every writer we know produces
    if table.first_data_line is not None:
        return f"line {table.first_data_line + row} (data row {row + 1})"
    return f"frame {row}"


def _tidy_rate(rate: float) -> float:
    # Time stamps printed with 8 decimals (0.01666667) give 59.99999 Hz; snap to the nearest 1/1000 Hz.
    return float(round(rate, 3)) if abs(rate - round(rate, 3)) < 1e-4 * rate else float(rate)


def _fill_gaps(name: str, values: np.ndarray, found: list[str], rate: float
               ) -> tuple[np.ndarray, dict[str, int], set[str]]:
    finite = np.isfinite(values)
    if finite.all():
        return values, {}, set()
    total = int((~finite).sum())
    max_run = int(math.floor(MAX_GAP_SECONDS * rate + 1e-9))
    interpolated: dict[str, int] = {}
    emptied: set[str] = set()
    frames = np.arange(values.shape[0])
    for j in np.flatnonzero(~finite.all(axis=0)):
        ok = finite[:, j]
        if not ok.any():
            emptied.add(found[j])
            continue
        longest = _longest_run(~ok)
        if longest > max_run:
            raise MotionInputError(
                f"{name}: {total} NaN/inf values; column {found[j]!r} has a gap of {longest} frames "
                f"({longest / rate:.3f} s), longer than the {MAX_GAP_SECONDS} s that can be interpolated"
            )
        # np.interp holds the edge values constant, which fills short gaps at the start or end with the nearest value
        values[~ok, j] = np.interp(frames[~ok], frames[ok], values[ok, j])
        interpolated[found[j]] = int((~ok).sum())
    return values, interpolated, emptied


def _longest_run(flags: np.ndarray) -> int:
    padded = np.concatenate([[0], flags.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[0::2]).max()) if edges.size else 0


def _check_units(name: str, values: np.ndarray, found: list[str], angle_idx: list[int], claimed: bool | None,
                 units_source: str) -> bool:
    """Return whether the angles are in degrees, refusing a claim that the numbers contradict."""
    if not angle_idx:
        return bool(claimed)
    magnitude = np.abs(values[:, angle_idx]).max(axis=0)
    joint = [k for k, i in enumerate(angle_idx) if found[i] != "pelvis_rotation"]
    joint_max = float(magnitude[joint].max()) if joint else 0.0
    all_max = float(magnitude.max())
    if units_source == "header":
        claim, fix = "the header says {}", "fix inDegrees in the header or pass in_degrees={}"
    elif units_source == "argument":
        claim, fix = "in_degrees={} was given", "pass in_degrees={}"
    else:  # arrays, .npz and Motion objects are SI unless told otherwise
        claim, fix = "values are taken as {} (SI)", "pass in_degrees={}"
    if claimed is True and all_max <= _DEGREES_MIN_MAX_ABS:
        said = claim.format("True" if units_source == "argument" else "degrees")
        raise MotionInputError(f"{name}: {said} but every angle lies within +-{all_max:.3g}, which looks like "
                               f"radians ({fix.format(False)})")
    if claimed is False and joint_max > _RADIANS_MAX_ABS:
        column = found[angle_idx[joint[int(np.argmax(magnitude[joint]))]]]
        said = claim.format("False" if units_source == "argument" else "radians")
        raise MotionInputError(f"{name}: {said} but {column} reaches {joint_max:.4g}, which looks like degrees "
                               f"({fix.format(True)})")
    if claimed is None:
        return joint_max > _RADIANS_MAX_ABS or (not joint and all_max > 2 * math.pi)
    return claimed


def _knee_convention(values: np.ndarray, found: list[str], knee_flexion: str) -> tuple[str, str]:
    knees = [found.index(k) for k in _KNEES if k in found]
    if knee_flexion != "auto":
        return knee_flexion, "argument"
    if not knees:
        return "absent", "detected"
    column = values[:, knees]
    flex_positive = max(float(column.max()), 0.0)
    flex_negative = max(-float(column.min()), 0.0)
    if max(flex_positive, flex_negative) < _KNEE_SIGN_MIN_EXCURSION:
        return "undetermined", "detected"
    return ("negative" if flex_negative > flex_positive else "positive"), "detected"


def _resample(values: np.ndarray, time: np.ndarray, source_rate: float, target_rate: float) -> np.ndarray:
    """Resample `(frames, columns)` sampled at `time` onto a uniform grid at `target_rate` starting at `time[0]`."""
    n = values.shape[0]
    start = float(time[0])
    uniform = n < 2 or np.allclose(np.diff(time), 1.0 / source_rate, rtol=1e-3, atol=0)
    if uniform and abs(source_rate - target_rate) <= 1e-6 * target_rate:
        return values.astype(np.float32)
    if not uniform:
        # irregular stamps: first onto a uniform grid at the source rate, so the filter sees even sampling
        count = int(math.floor((time[-1] - start) * source_rate + 1e-6)) + 1
        grid = start + np.arange(count) / source_rate
        values = _interp_columns(grid, time, values)
        time = grid
    if source_rate > target_rate * 1.01 and values.shape[0] > 12:
        values = _low_pass(values, source_rate, _ANTI_ALIAS_FRACTION * target_rate)
    count = int(math.floor((float(time[-1]) - start) * target_rate + 1e-6)) + 1
    grid = start + np.arange(count) / target_rate
    return _interp_columns(grid, time, values).astype(np.float32)


def _interp_columns(grid: np.ndarray, time: np.ndarray, values: np.ndarray) -> np.ndarray:
    # np.interp is 1-D; compute the bracketing indices once and blend all columns together.
    right = np.clip(np.searchsorted(time, grid, side="right"), 1, len(time) - 1)
    left = right - 1
    span = time[right] - time[left]
    weight = np.clip((grid - time[left]) / np.where(span > 0, span, 1.0), 0.0, 1.0)[:, None]
    return values[left] * (1.0 - weight) + values[right] * weight


def _low_pass(values: np.ndarray, rate: float, cutoff: float) -> np.ndarray:
    """Zero-phase low-pass with the magnitude response of a forward-backward 4th-order Butterworth filter.

    Applied in the frequency domain (numpy only, one FFT per call, no scipy import on the load path). Both ends are
    extended by odd reflection, as `scipy.signal.filtfilt` does, so the ends keep their slope instead of ringing.
    """
    n = values.shape[0]
    pad = min(n - 1, int(math.ceil(3.0 * rate / cutoff)))
    head = 2.0 * values[:1] - values[pad:0:-1]
    tail = 2.0 * values[-1:] - values[-2 : -pad - 2 : -1]
    extended = np.concatenate([head, values, tail], axis=0)  # (pad + frames + pad, columns)
    size = _fast_fft_size(extended.shape[0])
    # the FFT treats the signal as periodic: remove the line through both ends so the wrap-around has no jump
    ramp = np.linspace(0.0, 1.0, extended.shape[0])[:, None] * (extended[-1:] - extended[:1]) + extended[:1]
    extended = np.concatenate([extended - ramp, np.zeros((size - len(ramp), extended.shape[1]))], axis=0)
    freqs = np.fft.rfftfreq(size, d=1.0 / rate)
    # |H|^2 of the digital (bilinear, prewarped) order-4 Butterworth: the forward and backward passes of filtfilt
    warped = np.tan(np.pi * np.minimum(freqs / rate, 0.4999)) / math.tan(math.pi * cutoff / rate)
    gain = 1.0 / (1.0 + warped**8)
    spectrum = np.fft.rfft(extended, axis=0) * gain[:, None]
    return np.fft.irfft(spectrum, n=size, axis=0)[pad : pad + n] + ramp[pad : pad + n]


def _fast_fft_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: pocketfft is slow on lengths with large prime factors (60050 = 2 5^2 1201)."""
    best = 1 << max(n - 1, 0).bit_length()
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            size = power35
            while size < n:
                size *= 2
            best = min(best, size)
            power35 *= 3
        power5 *= 5
    return best
