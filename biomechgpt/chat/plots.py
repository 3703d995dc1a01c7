"""What the chat page shows of a motion: joint-angle curves and an animated sagittal-plane stick figure.

The stick figure is built by planar forward kinematics from the canonical coordinates (pelvis tilt, lumbar extension,
hip / knee / ankle flexion, shoulder and elbow flexion) with segment lengths from standard anthropometric proportions
of body height (Winter, *Biomechanics and Motor Control of Human Movement*). It is a view, not a reconstruction: the
frontal and transverse angles are ignored.

The animation is a self-contained SVG with SMIL `<animate>` elements: no files, no JavaScript, a few hundred kB at
most, and the browser plays it at the recording's real speed. Right limbs are red, left limbs blue; the SVG names both.

The joint angles of a walking or running recording are shown per gait cycle: cycles start at each peak of hip flexion
(late swing, just before heel strike), searched one stride period apart (the period of the knee angles,
`biomechgpt.evaluation.evaluate.knee_period_cadence`), every cycle is resampled to 0–100% and the plot shows the mean
± one standard deviation across cycles. A movement without a stride period (a squat, a jump, sit-to-stand) is shown
over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biomechgpt.processing.motion import Motion

__all__ = [
    "JOINT_PANELS",
    "CURVE_VIEWS",
    "MIN_GAIT_CYCLES",
    "gait_cycle_starts",
    "gait_cycle_curves",
    "StickFigure",
    "stick_figure",
    "stick_figure_svg",
    "joint_angle_figure",
]

# (panel title, right coordinate, left coordinate or None); angles are shown in degrees.
JOINT_PANELS: tuple[tuple[str, str, str | None], ...] = (
    ("Hip flexion", "hip_flexion_r", "hip_flexion_l"),
    ("Knee flexion", "knee_angle_r", "knee_angle_l"),
    ("Ankle dorsiflexion", "ankle_angle_r", "ankle_angle_l"),
    ("Pelvis tilt", "pelvis_tilt", None),
    ("Lumbar extension", "lumbar_extension", None),
    ("Shoulder flexion", "arm_flex_r", "arm_flex_l"),
)

# Segment lengths as fractions of body height (Winter 2009, table 4.1).
_THIGH = 0.245
_SHANK = 0.246
_FOOT = 0.152
_TRUNK = 0.288  # hip joint to shoulder joint
_NECK_HEAD = 0.130  # shoulder to top of head
_UPPER_ARM = 0.186
_FOREARM_HAND = 0.254  # forearm 0.146 + hand 0.108

_RIGHT_COLOR = "#d62728"
_LEFT_COLOR = "#1f77b4"
_BODY_COLOR = "#333333"

# How `joint_angle_figure` draws the curves: per gait cycle (mean ± SD, where cycles are found) or over time.
CURVE_VIEWS: tuple[str, ...] = ("cycle", "time")
# Fewer cycles than this make no mean ± SD worth showing: the curves are drawn over time instead.
MIN_GAIT_CYCLES = 3
_CYCLE_POINTS = 101  # 0, 1, ..., 100 % of the gait cycle


def _column(motion: Motion, name: str) -> np.ndarray:
    """A coordinate's values, zeros where the motion does not have it or did not record it."""
    if name not in motion.coordinates:
        return np.zeros(motion.n_frames, dtype=np.float64)
    index = motion.coordinates.index(name)
    if not motion.mask[index]:
        return np.zeros(motion.n_frames, dtype=np.float64)
    return motion.values[:, index].astype(np.float64)


def _present(motion: Motion, name: str) -> bool:
    return name in motion.coordinates and bool(motion.mask[motion.coordinates.index(name)])


def _down(angle: np.ndarray) -> np.ndarray:
    """Unit vectors of a segment hanging from its proximal joint, rotated forward (towards +x) by `angle`."""
    return np.stack([np.sin(angle), -np.cos(angle)], axis=-1)  # (frames, 2)


@dataclass
class StickFigure:
    """2-D joint positions (meters; x forward, y up) of a sagittal stick figure over time.

    Args:
        points (`dict[str, np.ndarray]`): joint name -> `(frames, 2)` positions, in a frame that follows the pelvis
            horizontally (hip at x = 0) with the ground at y = 0.
        progression (`np.ndarray` of shape `(frames,)`): forward pelvis position in the world, used to scroll the
            ground markers.
        frame_rate (`float`): frames per second of `points`.
    """

    points: dict[str, np.ndarray]
    progression: np.ndarray
    frame_rate: float

    @property
    def n_frames(self) -> int:
        return int(self.progression.shape[0])


def stick_figure(motion: Motion, height_m: float = 1.70) -> StickFigure:
    """Sagittal-plane forward kinematics of a motion.

    Args:
        motion (`Motion`): joint angles in radians; canonical coordinate names (missing ones count as 0).
        height_m (`float`, *optional*, defaults to 1.70): body height that scales the segments.

    Returns:
        `StickFigure`: joint positions per frame.
    """
    if not np.isfinite(height_m) or not 0.5 <= height_m <= 2.5:
        raise ValueError(f"height_m must be between 0.5 and 2.5 m, got {height_m}")
    pelvis = _column(motion, "pelvis_tilt")
    # OpenSim rotations about +z (pointing right) with x forward and y up: a positive pelvis tilt or lumbar extension
    # turns the trunk backwards, hip flexion swings the thigh forward, knee flexion swings the shank back, ankle
    # dorsiflexion lifts the toes, shoulder flexion swings the arm forward and elbow flexion lifts the forearm.
    trunk = pelvis + _column(motion, "lumbar_extension")
    hip = np.zeros((motion.n_frames, 2))
    shoulder = hip - _TRUNK * height_m * _down(trunk)
    head = shoulder - _NECK_HEAD * height_m * _down(trunk)
    points: dict[str, np.ndarray] = {"hip": hip, "shoulder": shoulder, "head": head}
    for side in ("r", "l"):
        thigh = pelvis + _column(motion, f"hip_flexion_{side}")
        shank = thigh - _column(motion, f"knee_angle_{side}")
        foot = shank + _column(motion, f"ankle_angle_{side}")
        knee = hip + _THIGH * height_m * _down(thigh)
        ankle = knee + _SHANK * height_m * _down(shank)
        toe = ankle + _FOOT * height_m * np.stack([np.cos(foot), np.sin(foot)], axis=-1)
        upper_arm = trunk + _column(motion, f"arm_flex_{side}")
        forearm = upper_arm + _column(motion, f"elbow_flex_{side}")
        elbow = shoulder + _UPPER_ARM * height_m * _down(upper_arm)
        wrist = elbow + _FOREARM_HAND * height_m * _down(forearm)
        points.update({f"knee_{side}": knee, f"ankle_{side}": ankle, f"toe_{side}": toe,
                       f"elbow_{side}": elbow, f"wrist_{side}": wrist})

    # Put the feet on the ground. With a recorded pelvis height keep its changes (jumps, sit-to-stand) and shift the
    # whole trial once; without it, ground the lowest foot point of every frame.
    lowest = np.minimum.reduce([points[f"{joint}_{side}"][:, 1] for joint in ("ankle", "toe") for side in ("r", "l")])
    if _present(motion, "pelvis_ty"):
        rise = _column(motion, "pelvis_ty")
        rise = rise - np.median(rise)
        offset = rise - np.percentile(lowest + rise, 5.0)
    else:
        offset = -lowest
    for name in points:
        points[name] = points[name] + np.stack([np.zeros_like(offset), offset], axis=-1)
    progression = _column(motion, "pelvis_tx")
    return StickFigure(points=points, progression=progression, frame_rate=motion.frame_rate)


def _polyline_frames(figure: StickFigure, joints: tuple[str, ...], frames: np.ndarray) -> list[str]:
    stacked = np.stack([figure.points[j][frames] for j in joints], axis=1)  # (frames, joints, 2)
    return [" ".join(f"{x:.3f},{-y:.3f}" for x, y in frame) for frame in stacked]


def stick_figure_svg(
    motion: Motion,
    height_m: float = 1.70,
    max_fps: float = 15.0,
    max_seconds: float = 30.0,
    size_px: int = 320,
) -> str:
    """An animated SVG of the sagittal stick figure, looping at the recording's real speed.

    Args:
        motion (`Motion`): the motion to draw.
        height_m (`float`, *optional*, defaults to 1.70): body height that scales the segments.
        max_fps (`float`, *optional*, defaults to 15): frames per second of the animation (the motion is subsampled).
        max_seconds (`float`, *optional*, defaults to 30): longer motions show their first `max_seconds`.
        size_px (`int`, *optional*, defaults to 320): rendered height in pixels.

    Returns:
        `str`: an `<svg>` element.
    """
    if motion.n_frames < 1:
        raise ValueError("cannot draw a motion with no frames")
    figure = stick_figure(motion, height_m=height_m)
    step = max(1, int(np.ceil(motion.frame_rate / max_fps)))
    last = min(motion.n_frames, int(round(max_seconds * motion.frame_rate)) or 1)
    frames = np.arange(0, last, step)
    seconds = max(len(frames) * step / motion.frame_rate, 0.1)

    all_points = np.concatenate([p[frames] for p in figure.points.values()])
    top = max(2.0 * height_m * 0.62, float(all_points[:, 1].max()) + 0.1)
    half_width = max(0.7 * height_m * 0.62, float(np.abs(all_points[:, 0]).max()) + 0.1)
    view = f"{-half_width:.3f} {-top:.3f} {2 * half_width:.3f} {top + 0.15:.3f}"
    width_px = int(round(size_px * 2 * half_width / (top + 0.15)))
    stroke = 0.025 * height_m

    def animated(values: list[str], attribute: str) -> str:
        if len(values) == 1:
            return ""
        return (f'<animate attributeName="{attribute}" dur="{seconds:.3f}s" repeatCount="indefinite" '
                f'calcMode="discrete" values="{";".join(values)}"/>')

    def limb(joints: tuple[str, ...], color: str, name: str) -> str:
        values = _polyline_frames(figure, joints, frames)
        return (f'<polyline class="{name}" points="{values[0]}" fill="none" stroke="{color}" '
                f'stroke-width="{stroke:.3f}" stroke-linecap="round" stroke-linejoin="round">'
                f"{animated(values, 'points')}</polyline>")

    # Ground markers every 0.5 m of the world, scrolled backwards as the pelvis moves forwards.
    progression = figure.progression[frames]
    start = np.floor((progression.min() - half_width) / 0.5) * 0.5
    stop = np.ceil((progression.max() + half_width) / 0.5) * 0.5
    ticks = "".join(f'<line x1="{x:.2f}" y1="0" x2="{x - 0.08:.2f}" y2="0.08"/>' for x in np.arange(start, stop, 0.5))
    shifts = [f"{-p:.3f} 0" for p in progression]
    scroll = "" if len(shifts) == 1 else (
        f'<animateTransform attributeName="transform" type="translate" dur="{seconds:.3f}s" '
        f'repeatCount="indefinite" calcMode="discrete" values="{";".join(shifts)}"/>'
    )
    # Which colour is which side, named in words too (red / blue), in the top left corner.
    font = 0.055 * height_m
    legend_x, legend_y = -half_width + 0.04, -top + 0.06
    legend = "".join(
        f'<line x1="{legend_x:.3f}" y1="{legend_y + row * 1.5 * font:.3f}" x2="{legend_x + 2 * font:.3f}" '
        f'y2="{legend_y + row * 1.5 * font:.3f}" stroke="{color}" stroke-width="{stroke:.3f}" '
        f'stroke-linecap="round"/>'
        f'<text x="{legend_x + 2.6 * font:.3f}" y="{legend_y + row * 1.5 * font + 0.35 * font:.3f}" '
        f'font-size="{font:.3f}" font-family="sans-serif" fill="{color}">{words}</text>'
        for row, (color, words) in enumerate(((_RIGHT_COLOR, "right side (red)"), (_LEFT_COLOR, "left side (blue)")))
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="stick-figure" viewBox="{view}" width="{width_px}" '
        f'height="{size_px}" role="img" aria-label="stick figure, {len(frames)} frames over {seconds:.1f} s; '
        f'right side red, left side blue">',
        f'<g class="legend">{legend}</g>',
        f'<line x1="{-half_width:.3f}" y1="0" x2="{half_width:.3f}" y2="0" stroke="#888" stroke-width="0.01"/>',
        f'<g stroke="#aaa" stroke-width="0.01" transform="translate({shifts[0]})">{ticks}{scroll}</g>',
        limb(("shoulder", "elbow_l", "wrist_l"), _LEFT_COLOR, "arm-left"),
        limb(("hip", "knee_l", "ankle_l", "toe_l"), _LEFT_COLOR, "leg-left"),
        limb(("hip", "shoulder", "head"), _BODY_COLOR, "trunk"),
        limb(("hip", "knee_r", "ankle_r", "toe_r"), _RIGHT_COLOR, "leg-right"),
        limb(("shoulder", "elbow_r", "wrist_r"), _RIGHT_COLOR, "arm-right"),
        "</svg>",
    ]
    return "".join(parts)


def gait_cycle_starts(motion: Motion, side: str = "r", cadence: float | None = None) -> np.ndarray:
    """Frames where the gait cycles of one leg start: the peaks of its hip flexion, one stride period apart.

    The stride period is the knee angles' period (`knee_period_cadence`); the first start is the hip flexion maximum
    within the first period and each next one the maximum between 0.7 and 1.3 periods after it. Peak hip flexion
    comes in late swing, about 10% of a cycle before heel strike, so the cycles are heel-strike cycles shifted by
    that much.

    Args:
        motion (`Motion`): the recording.
        side (`str`, *optional*, defaults to `"r"`): `"r"` or `"l"`.
        cadence (`float`, *optional*): the recording's `knee_period_cadence`, when the caller has it already (both
            sides share it); computed here otherwise.

    Returns:
        `np.ndarray` of int: the start frames, ascending; empty when the recording has no stride period (not gait,
        shorter than 3 s) or no hip flexion of that side.
    """
    if side not in ("r", "l"):
        raise ValueError(f"side must be 'r' or 'l', got {side!r}")
    if not _present(motion, f"hip_flexion_{side}"):
        return np.zeros(0, dtype=np.int64)
    if cadence is None:
        from biomechgpt.evaluation.evaluate import knee_period_cadence

        cadence = knee_period_cadence(motion)
    if cadence is None or not np.isfinite(cadence) or cadence <= 0:
        return np.zeros(0, dtype=np.int64)
    period = 120.0 * motion.frame_rate / cadence  # frames per stride (two steps)
    hip = _column(motion, f"hip_flexion_{side}")
    width = max(1, int(round(0.05 * motion.frame_rate)))  # a 0.1 s moving average keeps noise from moving a peak
    hip = np.convolve(np.pad(hip, width, mode="edge"), np.ones(2 * width + 1) / (2 * width + 1), mode="valid")
    starts = [int(np.argmax(hip[:max(1, int(round(period)))]))]
    while True:
        lo, hi = starts[-1] + int(round(0.7 * period)), starts[-1] + int(round(1.3 * period)) + 1
        if hi > len(hip):
            break
        starts.append(lo + int(np.argmax(hip[lo:hi])))
    if starts[0] == 0 and len(starts) > 1:  # the first period's maximum at frame 0 is the tail of a cut-off peak
        starts = starts[1:]
    return np.asarray(starts, dtype=np.int64)


def gait_cycle_curves(motion: Motion, coordinate: str, starts: np.ndarray, points: int = _CYCLE_POINTS) -> np.ndarray:
    """One coordinate's values over each gait cycle, resampled to `points` samples from 0 to 100% of the cycle.

    Cycles more than 20% longer or shorter than the median cycle (a stumble, a turn, a missed peak) are left out.

    Args:
        motion (`Motion`): the recording.
        coordinate (`str`): a coordinate of `motion`.
        starts (`np.ndarray`): cycle start frames (`gait_cycle_starts`).
        points (`int`, *optional*, defaults to 101): samples per cycle.

    Returns:
        `np.ndarray` of shape `(cycles, points)`: the values, in the motion's units.
    """
    starts = np.asarray(starts, dtype=np.int64)
    if len(starts) < 2:
        return np.zeros((0, points))
    lengths = np.diff(starts)
    usual = np.median(lengths)
    values = _column(motion, coordinate)
    phase = np.linspace(0.0, 1.0, points)
    cycles = [np.interp(start + phase * length, np.arange(len(values)), values)
              for start, length in zip(starts[:-1], lengths) if abs(length - usual) <= 0.2 * usual]
    return np.asarray(cycles).reshape(len(cycles), points)


def joint_angle_figure(motion: Motion, title: str | None = None, view: str = "time"):
    """Joint angles (degrees) of the main joints, right side red, left side blue.

    Uses `matplotlib.figure.Figure` directly (no pyplot), so concurrent sessions never share global figure state and
    nothing needs closing.

    Args:
        motion (`Motion`): the motion to plot.
        title (`str`, *optional*): figure title (what the user calls the recording: a file name or a trial id).
        view (`str`, *optional*, defaults to `"time"`): `"time"` draws the angles over time; `"cycle"` draws the mean
            ± SD over gait cycles (0–100%) where at least `MIN_GAIT_CYCLES` are found, and over time otherwise (the
            subtitle says why).

    Returns:
        `matplotlib.figure.Figure`: a 2 × 3 grid of panels.
    """
    from matplotlib.figure import Figure

    if view not in CURVE_VIEWS:
        raise ValueError(f"view must be one of {', '.join(CURVE_VIEWS)}, got {view!r}")
    cycles: dict[str, np.ndarray] = {}
    note = ""
    if view == "cycle":
        from biomechgpt.evaluation.evaluate import knee_period_cadence

        # one stride period for both legs; NaN (no period) tells gait_cycle_starts not to search again
        cadence = knee_period_cadence(motion) or float("nan")
        cycles = {side: gait_cycle_starts(motion, side, cadence) for side in ("r", "l")}
        counts = {side: len(gait_cycle_curves(motion, f"hip_flexion_{side}", starts))
                  for side, starts in cycles.items()}
        if counts["r"] < MIN_GAIT_CYCLES:
            cycles = {}
            note = "no repeating gait cycle found: angles over time"
        elif counts["l"] < MIN_GAIT_CYCLES:
            cycles["l"] = cycles["r"]  # the left side on the right leg's cycles rather than not at all
            note = f"mean ± SD over {counts['r']} gait cycles of the right leg"
        else:
            note = f"mean ± SD over {counts['r']} right and {counts['l']} left gait cycles"

    figure = Figure(figsize=(9.6, 5.4), layout="constrained")
    axes = figure.subplots(2, 3, sharex=True)
    handles = {}
    for ax, (panel, right, left) in zip(axes.flat, JOINT_PANELS):
        ax.set_title(panel, fontsize=11)
        drawn = False
        for name, color, label in ((right, _RIGHT_COLOR, "right"), (left, _LEFT_COLOR, "left")):
            if name is None or not _present(motion, name):
                continue
            color = color if left is not None else _BODY_COLOR
            if cycles:
                curves = np.degrees(gait_cycle_curves(motion, name, cycles["l" if name == left else "r"]))
                x = np.linspace(0.0, 100.0, curves.shape[1])
                mean, sd = curves.mean(axis=0), curves.std(axis=0)
                ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.2, linewidth=0)
                (line,) = ax.plot(x, mean, color=color, linewidth=1.6)
            else:
                (line,) = ax.plot(motion.time, np.degrees(_column(motion, name)), color=color, linewidth=1.2)
            if left is not None:
                handles.setdefault(label, line)
            drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="#888")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=9)
    for ax in axes[1]:
        ax.set_xlabel("gait cycle (%)" if cycles else "time (s)", fontsize=10)
    for ax in axes[:, 0]:
        ax.set_ylabel("angle (deg)", fontsize=10)
    if handles:
        figure.legend([handles[k] for k in ("right", "left") if k in handles],
                      [f"{k} side ({'red' if k == 'right' else 'blue'})" for k in ("right", "left") if k in handles],
                      loc="outside lower center", ncols=2, fontsize=10, frameon=False)
    heading = " · ".join(part for part in (title, note) if part)
    if heading:
        figure.suptitle(heading, fontsize=12)
    return figure
