"""Ground truth measured from a canonical motion, the way a gait lab would from video kinematics.

- Foot contacts: the ankle is furthest in front of the pelvis at about initial contact (Zeni et al. 2008), so
  contacts are the maxima of the right-minus-left ankle forward position of a two-segment sagittal leg.
- Cadence: from the stride times between same-side contacts (or step times when a clip holds only one each).
- Walking speed: pelvis displacement in the ground plane between the first and the last contact (whole steps, so
  the within-step speed fluctuation cancels). On a treadmill the pelvis stays put; speed is the belt speed, which a
  lab records from the treadmill, and stride length is belt speed times the measured stride time.
- Timed Up and Go: from the onset of rising (hip flexion leaving the seated baseline) to the end of sitting down.
- Four Square Step Test: from the onset of the first step (pelvis leaving its start position) to the end of the
  last step.
Onsets are found at two thresholds and extrapolated linearly to zero, which removes most of the delay a single
threshold would add.
"""

from __future__ import annotations

import numpy as np

from biomechgpt.processing.motion import CANONICAL_COORDINATES
from biomechgpt.simulation.calibration import foot_forward

__all__ = ["foot_contacts", "gait_ground_truth", "tug_time", "fsst_time"]

_I = {name: i for i, name in enumerate(CANONICAL_COORDINATES)}


def foot_contacts(values: np.ndarray, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Times (s) of right and left foot contacts in a canonical motion's values (radians)."""
    from scipy.signal import find_peaks

    deg = np.degrees
    tilt = deg(values[:, _I["pelvis_tilt"]])
    right = foot_forward(deg(values[:, _I["hip_flexion_r"]]), deg(values[:, _I["knee_angle_r"]]), tilt)
    left = foot_forward(deg(values[:, _I["hip_flexion_l"]]), deg(values[:, _I["knee_angle_l"]]), tilt)
    diff = right - left
    # A 5-frame moving average takes out frame-to-frame video jitter without moving the extremes.
    kernel = np.ones(5) / 5
    padded = np.pad(diff, 2, mode="edge")
    smooth = np.convolve(padded, kernel, mode="valid")
    span = np.percentile(smooth, 97) - np.percentile(smooth, 3)
    if span < 0.05:  # feet never separate: no stepping
        return np.array([]), np.array([])
    distance = max(int(0.25 * frame_rate), 1)
    # Continue the trend past both ends (odd reflection), so a contact a few frames from the end of a clip still
    # stands out from its surroundings; contacts found in the padding are dropped.
    pad = min(int(0.4 * frame_rate), len(smooth) - 1)
    extended = np.pad(smooth, pad, mode="reflect", reflect_type="odd")
    out = []
    for sign in (1.0, -1.0):
        signal = sign * smooth
        peaks, _ = find_peaks(sign * extended, prominence=0.35 * span, distance=distance)
        peaks = peaks - pad
        peaks = peaks[(peaks > 0) & (peaks < len(signal) - 1)]
        # Parabolic interpolation between frames.
        y0, y1, y2 = signal[peaks - 1], signal[peaks], signal[peaks + 1]
        denom = y0 - 2 * y1 + y2
        shift = np.where(np.abs(denom) > 1e-12, 0.5 * (y0 - y2) / np.where(denom == 0, 1, denom), 0.0)
        out.append((peaks + np.clip(shift, -0.5, 0.5)) / frame_rate)
    return out[0], out[1]


def _stride_time(right: np.ndarray, left: np.ndarray) -> float:
    intervals = np.concatenate([np.diff(right), np.diff(left)])
    if intervals.size:
        median = np.median(intervals)
        good = intervals[(intervals > 0.6 * median) & (intervals < 1.5 * median)]
        return float(good.mean())
    if right.size and left.size:
        events = np.sort(np.concatenate([right, left]))
        return float(2 * np.diff(events).mean()) if events.size > 1 else float("nan")
    return float("nan")


def gait_ground_truth(values: np.ndarray, frame_rate: float, treadmill_speed_m_s: float | None = None) -> dict:
    """`cadence_steps_per_min`, `walking_speed_m_s`, `stride_length_m` of a gait trial (NaN when unmeasurable)."""
    right, left = foot_contacts(values, frame_rate)
    nan = float("nan")
    stride = _stride_time(right, left)
    if not np.isfinite(stride):
        return {"cadence_steps_per_min": nan, "walking_speed_m_s": nan, "stride_length_m": nan}
    cadence = 120.0 / stride
    if treadmill_speed_m_s is not None and np.isfinite(treadmill_speed_m_s):
        speed = float(treadmill_speed_m_s)
    else:
        events = np.sort(np.concatenate([right, left]))
        t = np.arange(values.shape[0]) / frame_rate
        if events.size >= 2 and events[-1] - events[0] > 0.3:
            a, b = events[0], events[-1]
        else:
            a, b = t[0], t[-1]
        x = np.interp([a, b], t, values[:, _I["pelvis_tx"]])
        z = np.interp([a, b], t, values[:, _I["pelvis_tz"]])
        speed = float(np.hypot(x[1] - x[0], z[1] - z[0]) / (b - a))
    return {"cadence_steps_per_min": float(cadence), "walking_speed_m_s": speed, "stride_length_m": speed * stride}


def _onset(signal: np.ndarray, frame_rate: float, low: float, high: float) -> float:
    """Time at which `signal` (near 0 at rest) starts its first sustained rise above `high`.

    A smooth movement leaves rest quadratically, so the square root of the deviation grows linearly: the onset is
    extrapolated from the last `low` crossing and the `high` crossing on that scale. Noise that touches `low`
    earlier without reaching `high` is ignored.
    """
    above = np.flatnonzero(signal > high)
    if above.size == 0:
        return float("nan")
    i_high = int(above[0])
    below = np.flatnonzero(signal[:i_high] <= low)
    if below.size == 0:
        return 0.0
    i_low = int(below[-1])

    def crossing(level: float, start: int) -> float:
        i = start + int(np.flatnonzero(signal[start:] > level)[0])
        a, b = signal[i - 1], signal[i]
        return (i - 1 + (level - a) / (b - a)) / frame_rate

    t_low, t_high = crossing(low, i_low), crossing(high, i_low)
    rate = (np.sqrt(high) - np.sqrt(low)) / max(t_high - t_low, 1e-6)
    return max(t_low - np.sqrt(low) / rate, 0.0)


def _start_end(deviation_start: np.ndarray, deviation_end: np.ndarray, frame_rate: float, low: float, high: float):
    start = _onset(deviation_start, frame_rate, low, high)
    end_reversed = _onset(deviation_end[::-1], frame_rate, low, high)
    end = (deviation_end.shape[0] - 1) / frame_rate - end_reversed
    return start, end


def tug_time(values: np.ndarray, frame_rate: float) -> float:
    """Timed Up and Go time (s): rising onset to the end of sitting down, from mean hip flexion."""
    hip = np.degrees(0.5 * (values[:, _I["hip_flexion_r"]] + values[:, _I["hip_flexion_l"]]))
    kernel = np.ones(5) / 5
    hip = np.convolve(np.pad(hip, 2, mode="edge"), kernel, mode="valid")
    rest = max(int(0.3 * frame_rate), 1)
    start_dev = np.abs(hip - np.median(hip[:rest]))
    end_dev = np.abs(hip - np.median(hip[-rest:]))
    start, end = _start_end(start_dev, end_dev, frame_rate, 4.0, 8.0)
    return float(end - start)


def fsst_time(values: np.ndarray, frame_rate: float) -> float:
    """Four Square Step Test time (s): first step onset to the end of the last step, from the pelvis path."""
    x, z = values[:, _I["pelvis_tx"]], values[:, _I["pelvis_tz"]]
    rest = max(int(0.3 * frame_rate), 1)
    start_dev = np.hypot(x - np.median(x[:rest]), z - np.median(z[:rest]))
    end_dev = np.hypot(x - np.median(x[-rest:]), z - np.median(z[-rest:]))
    start, end = _start_end(start_dev, end_dev, frame_rate, 0.04, 0.08)
    return float(end - start)
