"""Gait-cycle templates fitted to the real reference recordings, as a few Fourier coefficients per coordinate.

The simulator never reads the recordings at run time and the repository never ships them: `fit_cycle_templates`
reads `../shared/reference_motion/` (public OpenSim example data, see its README), extracts mean cycles and stores
their Fourier coefficients in `calibration.json` next to this file (`python -m biomechgpt.simulation.calibration
DIR` regenerates it; a test checks the stored numbers still match a fresh fit). Provenance of each template:

- `walking`: `normal.mot`, one normal gait cycle of the OpenSim "Intro to Musculoskeletal Modeling" tutorial,
  starting at right heel strike. Pelvis and legs only (its lumbar columns mirror the pelvis, a tutorial artefact).
- `crouch`: the mean of `crouch1.mot` … `crouch4.mot`, four crouch-gait cycles (cerebral palsy) of the same
  tutorial, each starting at right initial contact.
- `running`: the mean of the cycles of `subject02_running_ik.mot` (treadmill running, Hamner et al. pipeline),
  cut at right foot strike; includes lumbar and arms.

Conventions: degrees, knee flexion positive (the files store it negative), phase 0 at right foot contact. Templates
are made left/right symmetric (the left leg is the right leg's pattern half a cycle later), so asymmetry in the
simulator comes only from the diagnosis, never from the one subject behind a recording.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "N_HARMONICS",
    "LEG_COORDINATES",
    "read_reference_mot",
    "foot_forward",
    "fit_cycle_templates",
    "load_cycle_templates",
    "evaluate_fourier",
]

N_HARMONICS = 8
LEG_COORDINATES = ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle", "subtalar_angle",
                   "mtp_angle")
_ARM = ("arm_flex", "arm_add", "arm_rot", "elbow_flex", "pro_sup")
# Pelvis/trunk coordinates that repeat every step (even harmonics) or alternate sign between steps (odd harmonics).
_EVEN = ("pelvis_tilt", "pelvis_ty", "lumbar_extension")
_ODD = ("pelvis_list", "pelvis_rotation", "lumbar_bending", "lumbar_rotation")
_CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
_SAMPLES = 100  # points per cycle before the Fourier fit


def read_reference_mot(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Reads an OpenSim `.mot`/`.sto` file: (column names without time, time (frames,), values (frames, cols)).

    Values are as stored (degrees, gait2392 knee sign). Private to calibration and the realism report; the
    package's general reader is `biomechgpt.motion_io.load_motion`.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    try:
        end = next(i for i, line in enumerate(lines) if line.strip().lower() == "endheader")
    except StopIteration:
        raise ValueError(f"{path}: no 'endheader' line, not an OpenSim motion file") from None
    names = lines[end + 1].split()
    rows = [line.split() for line in lines[end + 2:] if line.strip()]
    data = np.asarray(rows, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != len(names):
        raise ValueError(f"{path}: rows do not match the {len(names)} column names")
    return names[1:], data[:, 0], data[:, 1:]


def _to_canonical_sign(names: list[str], values: np.ndarray) -> np.ndarray:
    values = values.copy()
    for i, name in enumerate(names):
        if name.startswith("knee_angle"):
            values[:, i] = -values[:, i]  # gait2392 stores knee flexion negative
    return values


def foot_forward(hip_flexion_deg: np.ndarray, knee_flexion_deg: np.ndarray, pelvis_tilt_deg: np.ndarray | float = 0.0,
                 thigh: float = 0.5, shank: float = 0.5) -> np.ndarray:
    """Forward position of the ankle relative to the hip in a sagittal two-segment leg (units of the lengths).

    The ankle is furthest forward at about foot contact and furthest back at about toe-off (Zeni et al. 2008 use
    the same landmark with video markers), so its maxima serve as gait events without force plates.
    """
    thigh_angle = np.radians(np.asarray(hip_flexion_deg) + pelvis_tilt_deg)
    shank_angle = thigh_angle - np.radians(knee_flexion_deg)
    return thigh * np.sin(thigh_angle) + shank * np.sin(shank_angle)


def _fourier(cycle: np.ndarray) -> np.ndarray:
    """Coefficients [a0, a1..aK, b1..bK] of x(phase) = a0 + sum a_k cos(2 pi k phase) + b_k sin(2 pi k phase)."""
    n = cycle.shape[0]
    spectrum = np.fft.rfft(cycle, axis=0) / n
    a0 = spectrum[0].real
    a = 2 * spectrum[1:N_HARMONICS + 1].real
    b = -2 * spectrum[1:N_HARMONICS + 1].imag
    return np.concatenate([a0[None], a, b], axis=0)


def evaluate_fourier(coefficients: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Evaluates coefficients `(2K+1,)` or `(2K+1, C)` at `phase` (cycles) -> `(len(phase),)` or `(len(phase), C)`."""
    coefficients = np.asarray(coefficients, dtype=np.float64)
    k = (coefficients.shape[0] - 1) // 2
    angle = 2 * np.pi * np.asarray(phase, dtype=np.float64)[:, None] * np.arange(1, k + 1)
    basis = np.concatenate([np.ones((angle.shape[0], 1)), np.cos(angle), np.sin(angle)], axis=1)
    return basis @ coefficients


def _resample_cycle(time: np.ndarray, values: np.ndarray, start: float, stop: float) -> np.ndarray:
    grid = start + (stop - start) * np.arange(_SAMPLES) / _SAMPLES
    return np.stack([np.interp(grid, time, values[:, i]) for i in range(values.shape[1])], axis=1)


def _single_cycle(path: Path) -> tuple[list[str], np.ndarray]:
    names, time, values = read_reference_mot(path)
    values = _to_canonical_sign(names, values)
    # Time-normalised tutorial cycles run from 0 to 1 inclusive; the last row closes the cycle.
    return names, _resample_cycle(time, values, time[0], time[-1])


def _running_cycles(path: Path) -> tuple[list[str], np.ndarray]:
    names, time, values = read_reference_mot(path)
    values = _to_canonical_sign(names, values)
    col = {n: i for i, n in enumerate(names)}
    ff = foot_forward(values[:, col["hip_flexion_r"]], values[:, col["knee_angle_r"]], values[:, col["pelvis_tilt"]])
    rate = 1.0 / np.median(np.diff(time))
    from scipy.signal import find_peaks

    peaks, _ = find_peaks(ff, distance=int(0.4 * rate), prominence=0.5 * np.ptp(ff))
    cycles = [_resample_cycle(time, values, time[a], time[b]) for a, b in zip(peaks[:-1], peaks[1:])]
    return names, np.mean(cycles, axis=0)


def _symmetric_template(names: list[str], cycle: np.ndarray) -> dict[str, list[float]]:
    """Fourier coefficients per canonical coordinate name (legs/arms by side-free name), left/right averaged."""
    col = {n: i for i, n in enumerate(names)}
    half = _SAMPLES // 2
    out: dict[str, list[float]] = {}
    for base in LEG_COORDINATES + _ARM:
        r, left = f"{base}_r", f"{base}_l"
        if r in col and left in col:
            sym = 0.5 * (cycle[:, col[r]] + np.roll(cycle[:, col[left]], -half))
            out[base] = _fourier(sym).round(3).tolist()
    for name in _EVEN + _ODD:
        if name in col:
            sign = 1.0 if name in _EVEN else -1.0
            sym = 0.5 * (cycle[:, col[name]] + sign * np.roll(cycle[:, col[name]], -half))
            out[name] = _fourier(sym).round(3 if name != "pelvis_ty" else 5).tolist()
    return out


def fit_cycle_templates(reference_dir: str | Path) -> dict:
    """Fits the `walking`, `crouch` and `running` templates from the reference recordings in `reference_dir`."""
    reference_dir = Path(reference_dir)
    names, walking = _single_cycle(reference_dir / "normal.mot")
    walking_template = _symmetric_template(names, walking)
    # The tutorial's lumbar columns mirror the pelvis (an artefact, not trunk motion); the simulator models the trunk.
    for name in ("lumbar_extension", "lumbar_bending", "lumbar_rotation", "pelvis_ty"):
        walking_template.pop(name, None)
    crouch_cycles = [_single_cycle(reference_dir / f"crouch{i}.mot") for i in range(1, 5)]
    crouch_template = _symmetric_template(crouch_cycles[0][0], np.mean([c for _, c in crouch_cycles], axis=0))
    for name in ("lumbar_extension", "lumbar_bending", "lumbar_rotation", "pelvis_ty"):
        crouch_template.pop(name, None)
    names, running = _running_cycles(reference_dir / "subject02_running_ik.mot")
    running_template = _symmetric_template(names, running)
    return {
        "provenance": "Fourier fits (degrees, knee flexion positive, phase 0 = right foot contact) of the OpenSim "
                      "example recordings normal.mot, crouch1-4.mot and subject02_running_ik.mot; see "
                      "biomechgpt/simulation/calibration.py",
        "n_harmonics": N_HARMONICS,
        "templates": {"walking": walking_template, "crouch": crouch_template, "running": running_template},
    }


@lru_cache(maxsize=1)
def load_cycle_templates() -> dict[str, dict[str, np.ndarray]]:
    """The stored templates: {template: {coordinate: coefficients (2K+1,)}}."""
    data = json.loads(_CALIBRATION_FILE.read_text())
    return {name: {c: np.asarray(v) for c, v in t.items()} for name, t in data["templates"].items()}


if __name__ == "__main__":
    directory = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[3] / "shared" /
                                                          "reference_motion")
    _CALIBRATION_FILE.write_text(json.dumps(fit_cycle_templates(directory), indent=1) + "\n")
    print(f"wrote {_CALIBRATION_FILE}")
