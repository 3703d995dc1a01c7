"""Configuration of the MotionTokenizer VQ-VAE (joint-angle trajectories -> discrete motion codes)."""

from __future__ import annotations

from transformers import PretrainedConfig

import math

from .motion import ANGLE_GROUPS, CANONICAL_COORDINATES, CANONICAL_FRAME_RATE

__all__ = ["MotionTokenizerConfig"]


class MotionTokenizerConfig(PretrainedConfig):
    r"""
    Configuration of a [`MotionTokenizerModel`]: a 1-D convolutional VQ-VAE over time that turns a canonical motion
    into one discrete code per `downsample_factor` frames.

    Args:
        coordinates (`list[str]`, *optional*, defaults to `CANONICAL_COORDINATES`):
            The motion coordinates, in the order of the feature channels. One feature channel per coordinate (the
            pelvis rotation and horizontal translations become velocities, see `MotionFeatureExtractor`).
        frame_rate (`float`, *optional*, defaults to 30.0):
            Frames per second the model expects.
        downsample_factor (`int`, *optional*, defaults to 4):
            Canonical frames per motion code; a power of two >= 2 (each halving is one strided convolution).
        hidden_size (`int`, *optional*, defaults to 128):
            Channels of the convolutional encoder and decoder.
        num_residual_blocks (`int`, *optional*, defaults to 3):
            Residual blocks per resolution level; block `i` uses dilation `dilation_growth ** i`.
        dilation_growth (`int`, *optional*, defaults to 3):
            Growth of the dilation across the residual blocks of one level (widens the receptive field cheaply).
        codebook_size (`int`, *optional*, defaults to 512):
            Number of motion codes.
        codebook_dim (`int`, *optional*, defaults to 64):
            Dimension of each code vector.
        commitment_weight (`float`, *optional*, defaults to 0.02):
            Weight of the commitment loss (encoder output pulled towards its code).
        velocity_loss_weight (`float`, *optional*, defaults to 0.5):
            Weight of the reconstruction loss on frame-to-frame differences of the normalised features.
        ema_decay (`float`, *optional*, defaults to 0.99):
            Decay of the exponential moving averages that update the codebook (no codebook gradient).
        dead_code_patience (`int`, *optional*, defaults to 20):
            A code that no encoder output chose for this many training steps is re-seeded from a random encoder
            output of the current batch, which keeps the whole codebook in use. (Detection by age reacts within a
            few steps; a threshold on the moving-average usage would take hundreds at `ema_decay` 0.99.)
        min_frames (`int`, *optional*, defaults to 8):
            Shortest motion accepted, in frames.
        reconstruction_error_limits (`dict[str, float]`, *optional*):
            Per angle group of `ANGLE_GROUPS` ("pelvis_legs", "arms", "lumbar"), the `reconstruction_error_percentile`
            percentile of the encode -> decode error (degrees; per recording, the mean absolute error over its frames
            and the group's recorded angles) on held-out trials of the training data. Training writes it; `None` (a
            tokenizer trained before it existed) turns the out-of-distribution check off.
        reconstruction_error_percentile (`float`, *optional*, defaults to 99.0):
            The percentile `reconstruction_error_limits` holds.
        out_of_distribution_factor (`float`, *optional*, defaults to 1.5):
            A recording is unlike the training data in a group when its error there exceeds this many times the
            group's limit (the limit alone would flag one training-like recording in a hundred).
    """

    model_type = "biomechgpt_motion_tokenizer"

    def __init__(
        self,
        coordinates: list[str] | None = None,
        frame_rate: float = CANONICAL_FRAME_RATE,
        downsample_factor: int = 4,
        hidden_size: int = 128,
        num_residual_blocks: int = 3,
        dilation_growth: int = 3,
        codebook_size: int = 512,
        codebook_dim: int = 64,
        commitment_weight: float = 0.02,
        velocity_loss_weight: float = 0.5,
        ema_decay: float = 0.99,
        dead_code_patience: int = 20,
        min_frames: int = 8,
        reconstruction_error_limits: dict[str, float] | None = None,
        reconstruction_error_percentile: float = 99.0,
        out_of_distribution_factor: float = 1.5,
        **kwargs,
    ) -> None:
        coordinates = list(CANONICAL_COORDINATES if coordinates is None else coordinates)
        if len(coordinates) == 0 or len(set(coordinates)) != len(coordinates):
            raise ValueError("coordinates must be a non-empty list of distinct names")
        for name in ("pelvis_rotation", "pelvis_tx", "pelvis_tz"):
            if name not in coordinates:
                raise ValueError(f"coordinates must include {name!r} (the heading-invariant features need it)")
        if not frame_rate > 0:
            raise ValueError(f"frame_rate must be positive, got {frame_rate}")
        if downsample_factor < 2 or downsample_factor & (downsample_factor - 1):
            raise ValueError(f"downsample_factor must be a power of two >= 2, got {downsample_factor}")
        for name, value in (
            ("hidden_size", hidden_size),
            ("codebook_size", codebook_size),
            ("codebook_dim", codebook_dim),
            ("dilation_growth", dilation_growth),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if num_residual_blocks < 0:
            raise ValueError(f"num_residual_blocks must be >= 0, got {num_residual_blocks}")
        if not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in (0, 1), got {ema_decay}")
        if commitment_weight < 0 or velocity_loss_weight < 0:
            raise ValueError("commitment_weight and velocity_loss_weight must be >= 0")
        if dead_code_patience < 1:
            raise ValueError(f"dead_code_patience must be >= 1, got {dead_code_patience}")
        if min_frames < downsample_factor:
            raise ValueError(f"min_frames must be >= downsample_factor ({downsample_factor}), got {min_frames}")
        if reconstruction_error_limits is not None:
            if not isinstance(reconstruction_error_limits, dict):
                raise ValueError("reconstruction_error_limits must be a dict of angle group -> degrees or None")
            for group, limit in reconstruction_error_limits.items():
                if group not in ANGLE_GROUPS:
                    raise ValueError(f"reconstruction_error_limits: unknown angle group {group!r} "
                                     f"(known: {', '.join(ANGLE_GROUPS)})")
                if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not (
                        math.isfinite(limit) and limit > 0):
                    raise ValueError(f"reconstruction_error_limits[{group!r}] must be a positive number of degrees, "
                                     f"got {limit!r}")
            reconstruction_error_limits = {g: float(v) for g, v in reconstruction_error_limits.items()}
        if not 0.0 < reconstruction_error_percentile <= 100.0:
            raise ValueError(f"reconstruction_error_percentile must lie in (0, 100], got "
                             f"{reconstruction_error_percentile}")
        if not (math.isfinite(out_of_distribution_factor) and out_of_distribution_factor >= 1.0):
            raise ValueError(f"out_of_distribution_factor must be a number >= 1, got {out_of_distribution_factor}")
        self.coordinates = coordinates
        self.frame_rate = float(frame_rate)
        self.downsample_factor = int(downsample_factor)
        self.hidden_size = int(hidden_size)
        self.num_residual_blocks = int(num_residual_blocks)
        self.dilation_growth = int(dilation_growth)
        self.codebook_size = int(codebook_size)
        self.codebook_dim = int(codebook_dim)
        self.commitment_weight = float(commitment_weight)
        self.velocity_loss_weight = float(velocity_loss_weight)
        self.ema_decay = float(ema_decay)
        self.dead_code_patience = int(dead_code_patience)
        self.min_frames = int(min_frames)
        self.reconstruction_error_limits = reconstruction_error_limits
        self.reconstruction_error_percentile = float(reconstruction_error_percentile)
        self.out_of_distribution_factor = float(out_of_distribution_factor)
        super().__init__(**kwargs)

    @property
    def num_coordinates(self) -> int:
        """Feature channels per frame (one per coordinate)."""
        return len(self.coordinates)

    @property
    def num_downsampling_layers(self) -> int:
        """Strided convolutions in the encoder (and upsampling stages in the decoder)."""
        return self.downsample_factor.bit_length() - 1
