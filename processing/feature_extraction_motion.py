"""Stateless motion features for the MotionTokenizer: canonical `Motion` <-> heading-invariant feature frames.

Features (one channel per canonical coordinate, same order):

- `pelvis_rotation` becomes the yaw rate (rad/s), `pelvis_tx` / `pelvis_tz` become the pelvis velocity (m/s) in the
  walker's heading frame (forward, rightward). The heading is `pelvis_rotation` itself: it is defined for every
  activity (standing, sit-to-stand and treadmill trials have no direction of travel) and turns with the walker in
  the TUG and FSST. Velocities are forward differences, `v[t] = (x[t+1] - x[t]) * frame_rate`, rotated by the
  heading at frame `t`; the last frame repeats the previous velocity. The features therefore do not change when a
  whole trial is moved or turned about the vertical (exactly so for the simulator's convention, where the heading
  enters only `pelvis_rotation`; OpenSim's tilt-list-rotation order couples them slightly when the pelvis is tilted).
- Every other coordinate, including the pelvis height `pelvis_ty`, is kept as it is.

`features_to_motion` integrates the rates back, starting at position 0 and heading 0, so a decoded motion is the
original up to its start position and heading. Missing coordinates (`Motion.mask` False) are carried as a
per-coordinate mask; normalisation (with statistics stored in the model) happens in `MotionTokenizerModel`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import BatchFeature
from transformers.feature_extraction_utils import FeatureExtractionMixin

from .motion import CANONICAL_COORDINATES, CANONICAL_FRAME_RATE, Motion, MotionInputError

__all__ = ["MotionFeatureExtractor"]


def _wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap radians to [-pi, pi): a heading stored modulo 2*pi must not create a 2*pi jump in the yaw rate."""
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


class MotionFeatureExtractor(FeatureExtractionMixin):
    r"""
    Turns canonical motions into padded batches of heading-invariant features for [`MotionTokenizerModel`].

    Args:
        coordinates (`list[str]`, *optional*, defaults to `CANONICAL_COORDINATES`):
            Coordinates in feature-channel order.
        frame_rate (`float`, *optional*, defaults to 30.0):
            The only frame rate accepted (resampling is the reader's job: `biomechgpt.load_motion`).
        downsample_factor (`int`, *optional*, defaults to 4):
            Each motion is padded, by repeating its last frame, to a multiple of this many frames.
        min_frames (`int`, *optional*, defaults to 8):
            Shortest motion accepted.
    """

    model_input_names = ["motion_values", "motion_mask", "coordinate_mask"]

    def __init__(
        self,
        coordinates: Sequence[str] | None = None,
        frame_rate: float = CANONICAL_FRAME_RATE,
        downsample_factor: int = 4,
        min_frames: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.coordinates = list(CANONICAL_COORDINATES if coordinates is None else coordinates)
        self.frame_rate = float(frame_rate)
        self.downsample_factor = int(downsample_factor)
        self.min_frames = int(min_frames)
        if self.min_frames < 2:
            raise ValueError(f"min_frames must be >= 2 (velocities need two frames), got {min_frames}")

    @classmethod
    def from_config(cls, config: Any) -> MotionFeatureExtractor:
        """The feature extractor that matches a `MotionTokenizerConfig`."""
        return cls(
            coordinates=config.coordinates,
            frame_rate=config.frame_rate,
            downsample_factor=config.downsample_factor,
            min_frames=config.min_frames,
        )

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        # AutoFeatureExtractor finds this class through config.json instead (its registered model_type, or its
        # auto_map for remote code); a `feature_extractor_type` name here would stop it from reading that auto_map
        output.pop("feature_extractor_type", None)
        return output

    # ----------------------------------------------------------------------------------------------------------
    # input validation

    def as_motion(self, item: Any, name: str = "motion") -> Motion:
        """Validate one input (a `Motion`, a file path, or a float array `(frames, coordinates)`) as a `Motion`.

        Raises:
            `MotionInputError`: one line naming the input and the problem.
        """
        n_coords = len(self.coordinates)
        if isinstance(item, (str, os.PathLike)):
            item = _load_motion_file(item)
        if isinstance(item, Motion):
            source = item.meta.get("source") if isinstance(item.meta, dict) else None
            if source:  # name both the position in a batch and the recording
                name = str(source) if name == "motion" else f"{name} ({source})"
            return self._check_motion(item, name)
        if hasattr(item, "detach") and hasattr(item, "cpu"):  # a torch tensor, without importing torch here
            item = item.detach().cpu().numpy()
        if isinstance(item, np.ndarray):
            if item.ndim != 2 or item.shape[1] != n_coords:
                raise MotionInputError(
                    f"{name}: an array input must have shape (frames, {n_coords}) in canonical coordinate order, "
                    f"got {tuple(item.shape)}"
                )
            if not np.issubdtype(item.dtype, np.floating):
                raise MotionInputError(f"{name}: an array input must hold floats (radians, meters), got {item.dtype}")
            motion = Motion(list(self.coordinates), item.astype(np.float32), self.frame_rate, meta={"source": name})
            return self._check_motion(motion, name)
        raise MotionInputError(
            f"{name}: expected a Motion, a file path or a float array (frames, {n_coords}), got {type(item).__name__}"
        )

    def _check_motion(self, motion: Motion, name: str) -> Motion:
        unknown = [c for c in motion.coordinates if c not in self.coordinates]
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:4]) + (" ..." if len(unknown) > 4 else "")
            raise MotionInputError(
                f"{name}: unknown coordinates {shown} (not canonical; read files with biomechgpt.load_motion)"
            )
        if abs(motion.frame_rate - self.frame_rate) > 1e-6:
            raise MotionInputError(
                f"{name}: frame rate {motion.frame_rate:g} Hz, expected {self.frame_rate:g} Hz "
                "(resample with biomechgpt.load_motion)"
            )
        if motion.n_frames < self.min_frames:
            raise MotionInputError(f"{name}: too short: {motion.n_frames} frames, need at least {self.min_frames}")
        if not np.any(motion.mask):
            raise MotionInputError(f"{name}: no coordinate is marked present in its mask")
        present = motion.values[:, motion.mask]
        if not np.all(np.isfinite(present)):
            bad_col = int(np.argmax(~np.all(np.isfinite(present), axis=0)))
            bad_name = motion.present()[bad_col]
            n_bad = int(np.sum(~np.isfinite(present[:, bad_col])))
            raise MotionInputError(f"{name}: coordinate {bad_name!r} has {n_bad} non-finite values (NaN or inf)")
        if tuple(motion.coordinates) == tuple(self.coordinates):
            return motion
        # a subset / another order of the canonical coordinates: reorder, mark the rest missing
        values = np.zeros((motion.n_frames, len(self.coordinates)), dtype=np.float32)
        mask = np.zeros(len(self.coordinates), dtype=bool)
        for j, c in enumerate(motion.coordinates):
            k = self.coordinates.index(c)
            values[:, k] = motion.values[:, j]
            mask[k] = motion.mask[j]
        return Motion(list(self.coordinates), values, motion.frame_rate, mask, dict(motion.meta))

    # ----------------------------------------------------------------------------------------------------------
    # Motion <-> features

    def motion_to_features(self, motion: Motion) -> tuple[np.ndarray, np.ndarray]:
        """Heading-invariant features of one validated canonical motion.

        Returns:
            `(features, coordinate_mask)`: float32 `(frames, coordinates)` with 0 in missing channels, bool
            `(coordinates,)`.
        """
        idx = {c: i for i, c in enumerate(self.coordinates)}
        i_rot, i_tx, i_tz = idx["pelvis_rotation"], idx["pelvis_tx"], idx["pelvis_tz"]
        mask = np.asarray(motion.mask, dtype=bool).copy()
        values = np.where(mask[None, :], motion.values, 0.0).astype(np.float64)  # (frames, coords)
        feats = values.copy()
        rate = self.frame_rate

        heading = values[:, i_rot]  # 0 when pelvis_rotation is missing: the world frame stands in for the heading
        yaw_rate = np.empty_like(heading)
        yaw_rate[:-1] = _wrap_angle(np.diff(heading)) * rate
        yaw_rate[-1] = yaw_rate[-2]
        feats[:, i_rot] = yaw_rate

        # the horizontal velocity needs both horizontal translations; with either missing both channels are masked
        if mask[i_tx] and mask[i_tz]:
            vx = np.empty_like(heading)
            vz = np.empty_like(heading)
            vx[:-1] = np.diff(values[:, i_tx]) * rate
            vz[:-1] = np.diff(values[:, i_tz]) * rate
            vx[-1], vz[-1] = vx[-2], vz[-2]
            cos, sin = np.cos(heading), np.sin(heading)
            # OpenSim: x forward, y up, z right; a heading theta about +y turns the forward axis to (cos, -sin)
            feats[:, i_tx] = cos * vx - sin * vz  # forward
            feats[:, i_tz] = sin * vx + cos * vz  # rightward
        else:
            mask[i_tx] = mask[i_tz] = False
            feats[:, i_tx] = feats[:, i_tz] = 0.0
        feats[:, ~mask] = 0.0
        return feats.astype(np.float32), mask

    def features_to_motion(
        self, features: np.ndarray, n_frames: int | None = None, meta: dict | None = None
    ) -> Motion:
        """Integrate decoded features `(frames, coordinates)` back to a canonical motion, starting at position 0 and
        heading 0.

        Args:
            features (`np.ndarray`): de-normalised features as produced by `motion_to_features`.
            n_frames (`int`, *optional*): keep only the first `n_frames` frames (drops the padding).
            meta (`dict`, *optional*): stored as the motion's `meta`.
        """
        feats = np.asarray(features, dtype=np.float64)
        if n_frames is not None:
            feats = feats[:n_frames]
        idx = {c: i for i, c in enumerate(self.coordinates)}
        i_rot, i_tx, i_tz = idx["pelvis_rotation"], idx["pelvis_tx"], idx["pelvis_tz"]
        rate = self.frame_rate
        values = feats.copy()
        heading = np.concatenate([[0.0], np.cumsum(feats[:-1, i_rot]) / rate])
        cos, sin = np.cos(heading), np.sin(heading)
        forward, right = feats[:, i_tx], feats[:, i_tz]
        vx = cos * forward + sin * right  # inverse of the rotation in motion_to_features
        vz = -sin * forward + cos * right
        values[:, i_rot] = heading
        values[:, i_tx] = np.concatenate([[0.0], np.cumsum(vx[:-1]) / rate])
        values[:, i_tz] = np.concatenate([[0.0], np.cumsum(vz[:-1]) / rate])
        return Motion(list(self.coordinates), values.astype(np.float32), rate, meta=dict(meta or {}))

    # ----------------------------------------------------------------------------------------------------------
    # batching

    def __call__(self, motions: Any, return_tensors: str | None = "pt", **kwargs: Any) -> BatchFeature:
        """Validate, featurise and pad one motion or a list of them.

        Returns:
            `BatchFeature` with `motion_values` (float32, `(batch, frames, coordinates)`), `motion_mask` (bool,
            `(batch, frames)`, True on real frames), `coordinate_mask` (bool, `(batch, coordinates)`),
            `motion_lengths` (int64, `(batch,)`, real frames before padding). Frames are padded first to the
            motion's own multiple of `downsample_factor` by repeating its last frame (so a trial gives the same
            features alone or in a batch), then to the longest in the batch with zeros that are masked.
        """
        items = self._as_list(motions)
        feats, masks, lengths = [], [], []
        for i, item in enumerate(items):
            motion = self.as_motion(item, name=f"motion {i}" if len(items) > 1 else "motion")
            f, m = self.motion_to_features(motion)
            feats.append(f)
            masks.append(m)
            lengths.append(motion.n_frames)
        ds = self.downsample_factor
        padded = [-(-n // ds) * ds for n in lengths]
        width = max(padded)
        values = np.zeros((len(items), width, len(self.coordinates)), dtype=np.float32)  # (batch, frames, coords)
        frame_mask = np.zeros((len(items), width), dtype=bool)
        for b, (f, n, p) in enumerate(zip(feats, lengths, padded)):
            values[b, :n] = f
            values[b, n:p] = f[-1]
            frame_mask[b, :p] = True
        data = {
            "motion_values": values,
            "motion_mask": frame_mask,
            "coordinate_mask": np.stack(masks),
            "motion_lengths": np.asarray(lengths, dtype=np.int64),
        }
        return BatchFeature(data=data, tensor_type=return_tensors)

    @staticmethod
    def _as_list(motions: Any) -> list:
        if isinstance(motions, (list, tuple)):
            if len(motions) == 0:
                raise MotionInputError("motions: empty batch, pass at least one motion")
            return list(motions)
        if motions is None:
            raise MotionInputError("motions: got None, pass a Motion, a file path or a list of them")
        return [motions]


def _load_motion_file(path: str | os.PathLike) -> Motion:
    # the readers live in the biomechgpt package, not in these Hub-uploadable files: import them only when needed
    if not os.path.exists(path):
        raise MotionInputError(f"{os.fspath(path)}: no such file")
    try:
        from biomechgpt.motion_io import load_motion
    except ModuleNotFoundError as err:
        if err.name not in ("biomechgpt", "biomechgpt.motion_io"):
            raise
        raise MotionInputError(
            f"{os.fspath(path)}: reading motion files needs biomechgpt.motion_io (pip install biomechgpt); "
            "pass a Motion instead"
        ) from err
    return load_motion(path)
