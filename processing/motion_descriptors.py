"""Trial-level biomechanical descriptors of a whole recording: tempo, speed, ranges of motion, asymmetries, posture.

One vector per canonical `Motion` (`motion_descriptors`, names in `descriptor_names()`): cadence from gait events,
the spectrum and the autocorrelation; walking speed from pelvis displacement; step-time and range-of-motion asymmetry;
per-coordinate mean, spread, 5th/95th percentiles and mean speed; duration. They are the standard features of clinical
gait analysis. The non-LLM baseline fits gradient-boosted trees on them, and a BiomechGPT motion encoder built with
`descriptor_size` reads them as one more soft token beside the frames it attends over: a trait of the whole recording
(a 3 degree pelvis list, a 10% step-time asymmetry) is one number here, and something a conv stack over a crop of the
recording has to discover.

This file imports only numpy and its sibling `motion.py` so it can be uploaded to the Hub as remote code.
"""

from __future__ import annotations

import math

import numpy as np

from .motion import CANONICAL_COORDINATES, CANONICAL_FRAME_RATE, Motion, MotionInputError

__all__ = ["DESCRIPTOR_SETS", "ENCODER_DESCRIPTORS", "motion_descriptors", "descriptor_names", "check_canonical"]

DESCRIPTOR_SETS: tuple[str, ...] = ("all", "gait")
"""`"all"`: every descriptor (the baseline's trees). `"gait"`: the recording-level gait descriptors only (tempo,
speed, excursion, regularity, step timing, ranges of motion and their asymmetry), without the per-coordinate means,
spreads, percentiles and speeds and without the path's turning: on real recordings those depend on the lab's
coordinate conventions and IK noise (on the real treadmill files the turning lies 10-16 and the pelvis speeds 5
standard deviations outside the simulated range), and a network extrapolates where trees do not. The motion encoder
reads this set; what the per-coordinate block holds, its statistics token pools from the frames."""
ENCODER_DESCRIPTORS = "gait"
"""The set a motion encoder's descriptor token reads (training and the processor both take it from here)."""

_INDEX = {name: i for i, name in enumerate(CANONICAL_COORDINATES)}
_TRANSLATIONS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")
_ANGLES = tuple(c for c in CANONICAL_COORDINATES if c not in _TRANSLATIONS)
_PAIRS = ("hip_flexion", "hip_adduction", "knee_angle", "ankle_angle", "arm_flex", "elbow_flex")


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    width = min(width, x.size)  # np.convolve(mode="same") returns the longer input's length
    if width <= 1:
        return x
    kernel = np.ones(width)
    # dividing by the window's own count keeps the ends unbiased
    return np.convolve(x, kernel, mode="same") / np.convolve(np.ones_like(x), kernel, mode="same")


def _dominant_frequency(x: np.ndarray, fs: float, lo: float = 0.3, hi: float = 4.0) -> tuple[float, float]:
    """Frequency of the strongest spectral peak in [lo, hi] Hz and the share of the band's power around it."""
    if x.size < 8 or np.ptp(x) < 1e-9:
        return 0.0, 0.0
    y = (x - x.mean()) * np.hanning(x.size)
    n = max(1024, 1 << int(math.ceil(math.log2(4 * x.size))))  # zero padding sharpens short clips' peaks
    power = np.abs(np.fft.rfft(y, n)) ** 2
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    band = (freqs >= lo) & (freqs <= hi)
    if not band.any() or power[band].sum() <= 0:
        return 0.0, 0.0
    k = np.flatnonzero(band)[np.argmax(power[band])]
    f_peak = float(freqs[k])
    near = band & (np.abs(freqs - f_peak) <= 0.1 * max(f_peak, 0.3))
    return f_peak, float(power[near].sum() / power[band].sum())


def _autocorrelation_period(x: np.ndarray, fs: float, lo_s: float = 0.35, hi_s: float = 2.5) -> tuple[float, float]:
    """Lag (s) of the highest autocorrelation peak in [lo_s, hi_s] and its height (regularity, -1..1)."""
    x = x - x.mean()
    energy = float(x @ x)
    lo, hi = int(lo_s * fs), min(int(hi_s * fs), int(0.8 * x.size))
    if energy <= 1e-12 or hi <= lo + 1:
        return 0.0, 0.0
    n = 1 << int(math.ceil(math.log2(2 * x.size)))
    spectrum = np.fft.rfft(x, n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum), n)[: x.size] / energy
    lag = lo + int(np.argmax(ac[lo:hi]))
    return lag / fs, float(ac[lag])


def _step_events(x: np.ndarray, fs: float) -> np.ndarray:
    """Times (s) at which the right-minus-left hip flexion changes sign, with hysteresis: one per step."""
    if x.size < 4:
        return np.zeros(0)
    x = _moving_average(x - np.median(x), 3)
    h = 0.3 * x.std()
    if h <= 1e-9:
        return np.zeros(0)
    crossing = np.where(x > h, 1, np.where(x < -h, -1, 0))
    # the side the signal was last seen on, held through the dead band (forward fill of the non-zero crossings)
    last = np.maximum.accumulate(np.where(crossing != 0, np.arange(x.size), 0))
    state = crossing[last]
    changed = (state[:-1] != 0) & (state[1:] != state[:-1])
    return (np.flatnonzero(changed) + 1) / fs


def _features(motion: Motion, per_coordinate: bool = True) -> dict[str, float]:
    v = motion.values.astype(np.float64)
    fs = motion.frame_rate
    f: dict[str, float] = {}
    n = v.shape[0]
    f["duration_s"] = n / fs
    f["log_duration"] = math.log(max(n / fs, 1e-3))
    present = motion.mask
    f["has_arms"] = float(present[_INDEX["arm_flex_r"]])
    f["has_lumbar"] = float(present[_INDEX["lumbar_extension"]])

    # horizontal pelvis motion: heading and start position are arbitrary, so use magnitudes only
    horizontal = v[:, [_INDEX["pelvis_tx"], _INDEX["pelvis_tz"]]]
    step = np.linalg.norm(np.diff(horizontal, axis=0), axis=1) * fs if n > 1 else np.zeros(1)
    speed = _moving_average(step, max(1, int(0.5 * fs)))
    f["speed_net_m_s"] = float(np.linalg.norm(horizontal[-1] - horizontal[0]) / max(n / fs, 1e-3))
    f["speed_path_m_s"] = float(step.mean())
    f["speed_median_m_s"] = float(np.median(speed))
    f["speed_p90_m_s"] = float(np.percentile(speed, 90))
    f["speed_std_m_s"] = float(speed.std())
    f["max_excursion_m"] = float(np.linalg.norm(horizontal - horizontal[0], axis=1).max())
    f["still_fraction"] = float((speed < 0.1).mean())
    thirds = np.array_split(speed, 3)
    for k, part in enumerate(thirds):
        f[f"speed_third{k}_m_s"] = float(part.mean()) if part.size else 0.0
    if n > 2:
        direction = np.diff(_moving_average_2d(horizontal, int(fs)), axis=0)
        heading = np.unwrap(np.arctan2(direction[:, 1], direction[:, 0]))
        moving = step[: heading.size] > 0.2
        f["turning_rad"] = float(np.abs(np.diff(heading)[moving[1:]]).sum()) if moving.sum() > 1 else 0.0
    else:
        f["turning_rad"] = 0.0
    height = v[:, _INDEX["pelvis_ty"]]
    f["pelvis_height_range_m"] = float(np.ptp(height))
    f["pelvis_height_std_m"] = float(height.std())
    f["pelvis_height_rel_min_m"] = float(height.min() - np.median(height))
    f["pelvis_height_rel_max_m"] = float(height.max() - np.median(height))

    # gait periodicity from the alternating hip flexion (one cycle per stride) and the knee (one per stride)
    hip_diff = v[:, _INDEX["hip_flexion_r"]] - v[:, _INDEX["hip_flexion_l"]]
    stride_f, stride_share = _dominant_frequency(hip_diff, fs)
    f["cadence_fft_steps_min"] = 120.0 * stride_f
    f["stride_peak_share"] = stride_share
    period, regularity = _autocorrelation_period(hip_diff, fs)
    f["cadence_acf_steps_min"] = 120.0 / period if period > 0 else 0.0
    f["stride_regularity"] = regularity
    knee_period, knee_regularity = _autocorrelation_period(v[:, _INDEX["knee_angle_r"]], fs)
    f["cadence_knee_acf_steps_min"] = 120.0 / knee_period if knee_period > 0 else 0.0
    f["knee_regularity"] = knee_regularity
    ty_f, ty_share = _dominant_frequency(height, fs, 0.5, 6.0)  # the pelvis bobs once per step
    f["cadence_pelvis_fft_steps_min"] = 60.0 * ty_f
    f["pelvis_peak_share"] = ty_share
    events = _step_events(hip_diff, fs)
    intervals = np.diff(events)
    f["n_step_events"] = float(events.size)
    f["cadence_events_steps_min"] = 60.0 / float(np.median(intervals)) if intervals.size else 0.0
    f["step_time_cv"] = float(intervals.std() / intervals.mean()) if intervals.size > 1 else 0.0
    odd, even = intervals[0::2], intervals[1::2]
    f["step_time_asymmetry"] = (
        float(abs(odd.mean() - even.mean()) / (odd.mean() + even.mean())) if odd.size and even.size else 0.0
    )
    best_stride_hz = next((c / 120.0 for c in (f["cadence_fft_steps_min"], f["cadence_acf_steps_min"]) if c), 0.0)
    f["stride_length_est_m"] = f["speed_median_m_s"] / best_stride_hz if best_stride_hz > 0 else 0.0

    # ranges of motion and their right/left asymmetry
    p5, p95 = np.percentile(v, 5, axis=0), np.percentile(v, 95, axis=0)
    rom = p95 - p5
    for pair in _PAIRS:
        r, left = rom[_INDEX[f"{pair}_r"]], rom[_INDEX[f"{pair}_l"]]
        f[f"{pair}_rom_asymmetry"] = float((r - left) / (r + left)) if r + left > 1e-6 else 0.0
        f[f"{pair}_rom_min_side"] = float(min(r, left))
        f[f"{pair}_rom_max_side"] = float(max(r, left))
    if not per_coordinate:
        return f
    velocity = np.abs(np.diff(v, axis=0)).mean(axis=0) * fs if n > 1 else np.zeros(v.shape[1])
    mean, std = v.mean(axis=0), v.std(axis=0)  # whole-array reductions: per-column calls dominated the cost
    for name in _ANGLES + ("pelvis_ty",):
        i = _INDEX[name]
        f[f"{name}_mean"] = float(mean[i])
        f[f"{name}_std"] = float(std[i])
        f[f"{name}_p5"] = float(p5[i])
        f[f"{name}_p95"] = float(p95[i])
        f[f"{name}_speed"] = float(velocity[i])
    return f


def _moving_average_2d(x: np.ndarray, width: int) -> np.ndarray:
    return np.stack([_moving_average(x[:, j], width) for j in range(x.shape[1])], axis=1)


def check_canonical(motion: Motion, what: str = "the motion descriptors") -> None:
    """Raise `MotionInputError` unless `motion` is a canonical `Motion` of at least 2 frames."""
    if not isinstance(motion, Motion):
        raise MotionInputError(f"{what}: input must be a Motion, got {type(motion).__name__}")
    name = motion.meta.get("source", "motion")
    if not motion.is_canonical:
        raise MotionInputError(f"{name}: {what} read only a canonical Motion (load it with load_motion)")
    if motion.n_frames < 2:
        raise MotionInputError(f"{name}: {what} read at least 2 frames, got {motion.n_frames}")


def _selected(motion: Motion, kind: str) -> dict[str, float]:
    if kind not in DESCRIPTOR_SETS:
        raise ValueError(f"descriptor set must be one of {DESCRIPTOR_SETS}, got {kind!r}")
    features = _features(motion, per_coordinate=kind == "all")
    if kind == "gait":
        del features["turning_rad"]
    return features


def motion_descriptors(motion: Motion, kind: str = "all") -> np.ndarray:
    """The descriptors of one canonical `Motion` (`kind`: one of `DESCRIPTOR_SETS`), in the order of
    `descriptor_names(kind)` (float64, all finite)."""
    check_canonical(motion)
    return np.fromiter(_selected(motion, kind).values(), dtype=np.float64)


def descriptor_names(kind: str = "all") -> list[str]:
    """Names of the entries `motion_descriptors(motion, kind)` returns."""
    still = Motion(list(CANONICAL_COORDINATES), np.zeros((8, len(CANONICAL_COORDINATES))), CANONICAL_FRAME_RATE)
    return list(_selected(still, kind))
