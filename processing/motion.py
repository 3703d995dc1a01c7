"""The canonical motion data model shared by every stage of biomechgpt.

It lives in `processing/` (installed as `biomechgpt.processing.motion`) rather than in `biomechgpt/` so that the
MotionTokenizer files can be uploaded to the Hub as remote code and still import it: this module depends on numpy
only. `biomechgpt.Motion` is this same class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CANONICAL_COORDINATES",
    "CANONICAL_FRAME_RATE",
    "TRANSLATION_COORDINATES",
    "ARM_COORDINATES",
    "LUMBAR_COORDINATES",
    "ANGLE_GROUPS",
    "MIRROR_ORDER",
    "MIRROR_SIGN",
    "mirror_frames",
    "Motion",
    "MotionInputError",
]

# OpenSim full-body coordinates of the Rajagopal 2016 / OpenCap / AddBiomechanics models, in this fixed order.
_LEG = ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle", "subtalar_angle", "mtp_angle")
_ARM = ("arm_flex", "arm_add", "arm_rot", "elbow_flex", "pro_sup")
CANONICAL_COORDINATES: tuple[str, ...] = (
    ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz")
    + tuple(f"{name}_r" for name in _LEG)
    + tuple(f"{name}_l" for name in _LEG)
    + ("lumbar_extension", "lumbar_bending", "lumbar_rotation")
    + tuple(f"{name}_r" for name in _ARM)
    + tuple(f"{name}_l" for name in _ARM)
)
TRANSLATION_COORDINATES: tuple[str, ...] = ("pelvis_tx", "pelvis_ty", "pelvis_tz")
ARM_COORDINATES: tuple[str, ...] = tuple(f"{n}_{s}" for s in ("r", "l") for n in _ARM)
LUMBAR_COORDINATES: tuple[str, ...] = ("lumbar_extension", "lumbar_bending", "lumbar_rotation")
# The joint angles in the groups a recording is compared with the training data (the MotionTokenizer's
# out-of-distribution check): real recordings depart from the simulator in the arms and the trunk far more often than
# in the legs, and a user can leave those columns out. The heading (pelvis_rotation) is no joint angle.
ANGLE_GROUPS: dict[str, tuple[str, ...]] = {
    "pelvis_legs": ("pelvis_tilt", "pelvis_list") + tuple(f"{name}_{s}" for s in ("r", "l") for name in _LEG),
    "arms": ARM_COORDINATES,
    "lumbar": LUMBAR_COORDINATES,
}

# The left-right mirror image of a canonical motion (and of its feature frames, which keep the channel order): right
# and left coordinates swap; rotations about the forward and vertical axes (pelvis list and rotation, lumbar bending
# and rotation) and the rightward translation change sign. The OpenSim models define each left joint's axes mirrored,
# so a left hip adduction of 5 degrees is the mirror of a right one of 5 degrees, with no sign change. A training
# trial and its mirror image are equally plausible recordings whose affected side is swapped.
MIRROR_ORDER: tuple[int, ...] = tuple(
    CANONICAL_COORDINATES.index(name[:-2] + {"_r": "_l", "_l": "_r"}[name[-2:]] if name[-2:] in ("_r", "_l") else name)
    for name in CANONICAL_COORDINATES
)
MIRROR_SIGN: tuple[float, ...] = tuple(
    -1.0 if name in ("pelvis_list", "pelvis_rotation", "pelvis_tz", "lumbar_bending", "lumbar_rotation") else 1.0
    for name in CANONICAL_COORDINATES
)


def mirror_frames(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mirror image of frames `(frames, coordinates)` in canonical order (joint angles, or the feature frames,
    which keep that order) and of their coordinate mask."""
    values = np.asarray(values)
    return values[:, MIRROR_ORDER] * np.asarray(MIRROR_SIGN, dtype=values.dtype), np.asarray(mask)[list(MIRROR_ORDER)]


# Markerless video (OpenCap and most clinical pipelines) delivers 30 Hz; joint-angle content of walking, running and
# the clinical tests lies well below 15 Hz, so 30 Hz loses nothing the tasks need and keeps token sequences short.
CANONICAL_FRAME_RATE: float = 30.0


class MotionInputError(ValueError):
    """Bad motion input. The message is one line that names the input and the problem."""


@dataclass
class Motion:
    """Joint angles over time in SI units.

    Args:
        coordinates (`list[str]`): coordinate names, one per column of `values`.
        values (`np.ndarray` of shape `(frames, coordinates)`, float32): radians for angles, meters for the pelvis
            translations. Columns of coordinates that were not recorded hold 0 and are `False` in `mask`.
        frame_rate (`float`): frames per second.
        mask (`np.ndarray` of shape `(coordinates,)`, bool, *optional*): which coordinates were actually present in
            the source. Defaults to all present.
        meta (`dict`, *optional*): source file, subject id, units and conventions detected, anything else.

    Canonical form (what `biomechgpt.load_motion` returns): `coordinates == CANONICAL_COORDINATES`, frame rate
    `CANONICAL_FRAME_RATE`, knee flexion positive.
    """

    coordinates: list[str]
    values: np.ndarray
    frame_rate: float
    mask: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = self.meta.get("source", "motion") if isinstance(self.meta, dict) else "motion"
        self.coordinates = [str(c) for c in self.coordinates]
        values = np.asarray(self.values)
        if values.ndim != 2:
            raise MotionInputError(f"{name}: values must be 2-D (frames, coordinates), got shape {values.shape}")
        if values.shape[1] != len(self.coordinates):
            raise MotionInputError(
                f"{name}: values have {values.shape[1]} columns but {len(self.coordinates)} coordinate names"
            )
        if len(set(self.coordinates)) != len(self.coordinates):
            raise MotionInputError(f"{name}: duplicate coordinate names")
        try:
            self.values = np.ascontiguousarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            raise MotionInputError(f"{name}: values must be numbers, got dtype {values.dtype}") from None
        try:
            rate = float(self.frame_rate)
        except (TypeError, ValueError):
            raise MotionInputError(f"{name}: frame_rate must be a positive number, got {self.frame_rate!r}") from None
        if not np.isfinite(rate) or rate <= 0:
            raise MotionInputError(f"{name}: frame_rate must be a positive number, got {self.frame_rate}")
        self.frame_rate = rate
        if self.mask is None:
            self.mask = np.ones(len(self.coordinates), dtype=bool)
        else:
            self.mask = np.asarray(self.mask, dtype=bool)
            if self.mask.shape != (len(self.coordinates),):
                raise MotionInputError(f"{name}: mask must have one entry per coordinate, got {self.mask.shape}")

    def __repr__(self) -> str:
        # the dataclass repr printed every frame of `values`; a summary says what a user looks for
        recorded = int(np.asarray(self.mask).sum()) if self.mask is not None else len(self.coordinates)
        source = f", source={self.meta['source']!r}" if isinstance(self.meta.get("source"), str) else ""
        return (f"Motion(frames={self.n_frames}, duration_s={self.duration:.2f}, frame_rate={self.frame_rate:g}, "
                f"coordinates={recorded} of {len(self.coordinates)} recorded{source})")

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def duration(self) -> float:
        """Duration in seconds (frames / frame rate)."""
        return self.n_frames / self.frame_rate

    @property
    def time(self) -> np.ndarray:
        return np.arange(self.n_frames, dtype=np.float64) / self.frame_rate

    @property
    def is_canonical(self) -> bool:
        return tuple(self.coordinates) == CANONICAL_COORDINATES and self.frame_rate == CANONICAL_FRAME_RATE

    def column(self, name: str) -> np.ndarray:
        """The values of one coordinate, shape `(frames,)`."""
        try:
            return self.values[:, self.coordinates.index(name)]
        except ValueError:
            raise KeyError(f"coordinate {name!r} not in this motion") from None

    def present(self) -> list[str]:
        """Names of the coordinates that were actually recorded."""
        return [c for c, m in zip(self.coordinates, self.mask) if m]

    def mirrored(self) -> Motion:
        """The left-right mirror image of a canonical motion (see `MIRROR_ORDER`); `meta["mirrored"]` is flipped."""
        if tuple(self.coordinates) != CANONICAL_COORDINATES:
            raise MotionInputError(f"{self.meta.get('source', 'motion')}: only a canonical motion can be mirrored")
        values, mask = mirror_frames(self.values, self.mask)
        meta = {**self.meta, "mirrored": not self.meta.get("mirrored", False)}
        return Motion(list(self.coordinates), values, self.frame_rate, mask, meta)

    def slice_frames(self, start: int, stop: int) -> Motion:
        return Motion(list(self.coordinates), self.values[start:stop].copy(), self.frame_rate, self.mask.copy(),
                      dict(self.meta))
