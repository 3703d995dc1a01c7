"""The continuous motion path of BiomechGPT: a temporal conv encoder over motion feature frames and the projector that
places its output in the language model's embedding space (as LLaVA places image patches).

The MotionTokenizer's discrete codes keep the coarse shape of a movement but quantise away small-amplitude channels and
static posture offsets (subtalar and lumbar angles, pelvis list, arm posture): what separates diagnoses and devices.
This encoder reads the heading-invariant feature frames themselves (the MotionTokenizer's `MotionFeatureExtractor`
features, standardised with statistics stored here) and pools them into a bounded number of soft tokens with learned
queries, so a trial of any length costs the language model the same few positions.

This file imports only torch so it can be uploaded to the Hub as remote code next to the weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["BiomechGPTMotionEncoder", "BiomechGPTMultiModalProjector", "MOTION_FRAME_MULTIPLE"]

# Frames are padded (by the processor) to a multiple of this: the encoder halves the frame rate twice.
MOTION_FRAME_MULTIPLE = 4


class _ResidualBlock(nn.Module):
    """Pre-activation residual block: GELU, dilated conv, GELU, 1x1 conv; padded frames are zeroed after it."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x: (batch, channels, frames)
        return (x + self.mix(self.act(self.conv(self.act(x))))) * mask


class BiomechGPTMotionEncoder(nn.Module):
    r"""
    Temporal convolutional encoder: motion feature frames `(batch, frames, channels)` -> `(batch, num_tokens, hidden)`.

    The input is standardised per channel (`feature_mean`, `feature_std`, set from training motions with
    [`~BiomechGPTMotionEncoder.set_feature_statistics`]), missing channels are zeroed and flagged by the coordinate
    mask (given as extra input channels), and the log of the recording's duration is a constant channel (a fact of
    the recording, which the crop to the middle of a long trial would otherwise hide). A strided stem to 15 Hz,
    residual dilated convolutions, a strided halving to 7.5 Hz, more residual blocks, then `num_tokens` learned
    queries attend over the frames (padding masked): each query can specialise (a cycle's shape, a side's asymmetry,
    the overall tempo).

    Args:
        num_channels (`int`): feature channels (canonical coordinates).
        hidden_size (`int`): conv channels and token size.
        num_layers (`int`): residual blocks per resolution (dilations 1, 3, 9, ...).
        num_tokens (`int`): soft tokens per motion.
        num_heads (`int`, *optional*, defaults to 4): heads of the pooling attention.
    """

    def __init__(self, num_channels: int, hidden_size: int, num_layers: int, num_tokens: int, num_heads: int = 4
                 ) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"motion encoder hidden size {hidden_size} is not a multiple of {num_heads} heads")
        self.num_channels = num_channels
        self.num_tokens = num_tokens
        self.register_buffer("feature_mean", torch.zeros(num_channels))
        self.register_buffer("feature_std", torch.ones(num_channels))
        # Joint-angle content above ~6 Hz is noise: the stem already halves the rate (to 15 Hz), which halves the cost.
        self.stem = nn.Conv1d(2 * num_channels + 1, hidden_size, 4, stride=2, padding=1)
        dilations = [3 ** k for k in range(num_layers)]
        self.blocks_high = nn.ModuleList(_ResidualBlock(hidden_size, d) for d in dilations)
        self.down = nn.Conv1d(hidden_size, hidden_size, 4, stride=2, padding=1)
        self.blocks_low = nn.ModuleList(_ResidualBlock(hidden_size, d) for d in dilations)
        self.queries = nn.Parameter(torch.randn(num_tokens, hidden_size) / math.sqrt(hidden_size))
        self.pool = nn.MultiheadAttention(hidden_size, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(hidden_size)

    @torch.no_grad()
    def set_feature_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store per-channel statistics of training features (std is floored so constant channels stay finite)."""
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=self.feature_mean.dtype))
        self.feature_std.copy_(torch.as_tensor(std, dtype=self.feature_std.dtype).clamp_min(1e-3))

    def forward(
        self,
        motion_values: torch.Tensor,
        motion_mask: torch.Tensor,
        coordinate_mask: torch.Tensor,
        motion_durations: torch.Tensor,
    ) -> torch.Tensor:
        r"""
        Args:
            motion_values (`torch.FloatTensor` of shape `(batch, frames, channels)`): features, frames a multiple of 4.
            motion_mask (`torch.BoolTensor` of shape `(batch, frames)`): real frames (padding after them).
            coordinate_mask (`torch.BoolTensor` of shape `(batch, channels)`): channels present in the recording.
            motion_durations (`torch.FloatTensor` of shape `(batch,)`): length of the whole recording in seconds.

        Returns:
            `torch.FloatTensor` of shape `(batch, num_tokens, hidden)`.
        """
        dtype = self.stem.weight.dtype
        frames = motion_values.shape[1]
        if frames % MOTION_FRAME_MULTIPLE:
            raise ValueError(f"motion_values: {frames} frames, expected a multiple of {MOTION_FRAME_MULTIPLE}")
        present = coordinate_mask.to(dtype)[:, None, :]  # (batch, 1, channels)
        x = (motion_values.to(dtype) - self.feature_mean.to(dtype)) / self.feature_std.to(dtype) * present
        duration = torch.log(motion_durations.to(dtype).clamp_min(0.1))[:, None, None].expand(-1, frames, 1)
        x = torch.cat([x, present.expand(-1, frames, -1), duration], 2).transpose(1, 2)  # (batch, 2C+1, frames)
        mask = motion_mask.to(dtype)[:, None, :]  # (batch, 1, frames)
        x = self.stem(x * mask)
        mask = mask[:, :, ::2]  # 15 Hz
        x = x * mask
        for block in self.blocks_high:
            x = block(x, mask)
        mask = mask[:, :, ::2]  # 7.5 Hz
        x = self.down(x) * mask
        for block in self.blocks_low:
            x = block(x, mask)
        keys = x.transpose(1, 2)  # (batch, frames / 4, hidden)
        queries = self.queries.to(dtype)[None].expand(keys.shape[0], -1, -1)
        pooled, _ = self.pool(queries, keys, keys, key_padding_mask=~mask[:, 0].bool(), need_weights=False)
        return self.norm(pooled + queries)  # (batch, num_tokens, hidden)


class BiomechGPTMultiModalProjector(nn.Module):
    """Two-layer MLP from the motion encoder's token size to the language model's hidden size (as LLaVA's)."""

    def __init__(self, motion_hidden_size: int, text_hidden_size: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(motion_hidden_size, text_hidden_size)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(text_hidden_size, text_hidden_size)

    def forward(self, motion_features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(motion_features)))
