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

    With `statistics_token`, the last query token is not a learned query but the masked mean and standard deviation of
    the frames over time, through a linear map (statistics pooling, as x-vectors pool speech frames). Attention picks
    moments; a trial-level trait that is present in every frame (a posture offset, a constant asymmetry) is what an
    average holds. Stage-1 heads on the default run's test split, mean of seeds 0 and 1
    (`bench/bench_encoder_baseline.py`): diagnosis macro-F1 0.632 -> 0.665, assistive device 0.579 -> 0.602, side and
    fall history within 0.01, numeric r equal or up to 0.011 higher, at the same cost.

    With `descriptor_size`, one more query token reads descriptors of the whole recording, not only of the crop the
    frames come from, through a two-layer MLP (training gives it the 49 recording-level gait descriptors of
    `processing/motion_descriptors.py`: tempo, speed, step timing, ranges of motion and their asymmetry).
    Standardised descriptors are clipped to +-8 so that a recording far outside the training range (another lab's
    conventions, a broken channel) cannot swamp the token.

    With `readout_sizes`, the last `len(readout_sizes)` soft tokens are readout tokens: one linear head per task on
    all the query tokens (stage 1 trains them on the task's targets: class logits, or a standardised value), whose
    log-probabilities (or value) a linear map and a layer norm turn into a token. A small language model struggles
    to gather a participant-level answer (a diagnosis, a device) from many soft tokens through attention; a token
    that already holds the encoder's reading of the task leaves it the easier job of putting that into words. The
    heads read the encoder's own features only, like the queries, so what the model answers is still read from the
    motion.

    With `mirror_channels` and `readout_mirror`, the readout heads read two views: the motion and its left-right
    mirror image (channels reordered and signed by `mirror_channels` and `mirror_signs`, see `Motion.mirrored`). A
    closed-set head's log-probabilities are averaged with the mirror image's, whose outputs are reordered by
    `readout_mirror` (a "left" side reads the mirror image's "right"); a numeric head's values are averaged. Stage 1
    trains on mirror images as well (`pretrain_motion_encoder(mirror=...)`), so both views are ones the heads know;
    the side of an impairment then comes from an asymmetry read both ways round. Stage-1 heads on the default run's
    test split, seed 0: affected side macro-F1 0.683 without mirror images, 0.738 trained with them, 0.769 reading
    both views; in the whole model it costs fall history (README, "What this says"), so training makes
    it an option (`--encoder-mirror`).

    Args:
        num_channels (`int`): feature channels (canonical coordinates).
        hidden_size (`int`): conv channels and token size.
        num_layers (`int`): residual blocks per resolution (dilations 1, 3, 9, ...).
        num_tokens (`int`): soft tokens per motion (queries plus readout tokens).
        num_heads (`int`, *optional*, defaults to 4): heads of the pooling attention.
        readout_sizes (`list[int]`, *optional*): outputs of each readout head (classes, or 1 for a number).
        readout_tasks (`list[str]`, *optional*): the task of each readout head (names only, for training).
        statistics_token (`bool`, *optional*, defaults to `False`): the last query token pools mean and standard
            deviation over the frames instead of attending.
        descriptor_size (`int`, *optional*, defaults to 0): with more than 0, the last query token is an MLP of
            that many trial-level descriptors of the whole recording (`motion_descriptors`, standardised with
            statistics stored here), after the statistics token if there is one.
        mirror_channels (`list[int]`, *optional*): per feature channel, the channel its mirror image takes values
            from; with `readout_mirror`, the readout heads read both views.
        mirror_signs (`list[float]`, *optional*): per feature channel, the sign of its mirror image (defaults to 1).
        readout_mirror (`list[list[int]]`, *optional*): per readout head, for each output, the output of the mirror
            image that it reads (empty for a numeric head).
    """

    def __init__(self, num_channels: int, hidden_size: int, num_layers: int, num_tokens: int, num_heads: int = 4,
                 readout_sizes: tuple[int, ...] | list[int] = (), readout_tasks: tuple[str, ...] | list[str] = (),
                 statistics_token: bool = False, descriptor_size: int = 0,
                 mirror_channels: tuple[int, ...] | list[int] = (), mirror_signs: tuple[float, ...] | list[float] = (),
                 readout_mirror: tuple | list = ()) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"motion encoder hidden size {hidden_size} is not a multiple of {num_heads} heads")
        self.readout_sizes = tuple(int(n) for n in readout_sizes)
        self.readout_tasks = tuple(str(t) for t in readout_tasks)
        if self.readout_tasks and len(self.readout_tasks) != len(self.readout_sizes):
            raise ValueError(f"{len(self.readout_tasks)} readout tasks for {len(self.readout_sizes)} readout sizes")
        if any(n < 1 for n in self.readout_sizes):
            raise ValueError(f"readout sizes must be at least 1, got {list(self.readout_sizes)}")
        self.num_queries = num_tokens - len(self.readout_sizes)  # the statistics token counts as a query token
        self.statistics_token = bool(statistics_token)
        if int(descriptor_size) < 0:
            raise ValueError(f"descriptor_size must be 0 or more, got {descriptor_size}")
        self.descriptor_size = int(descriptor_size)
        pooled = self.statistics_token + (self.descriptor_size > 0)  # query tokens that do not attend
        if self.num_queries < 1 + pooled:
            raise ValueError(f"{num_tokens} soft tokens leave no query token beside {len(self.readout_sizes)} "
                             f"readout tokens" + (" and the statistics token" if self.statistics_token else "")
                             + (" and the descriptor token" if self.descriptor_size else ""))
        self.num_channels = num_channels
        self.num_tokens = num_tokens
        self._set_mirror(mirror_channels, mirror_signs, readout_mirror)
        self.register_buffer("feature_mean", torch.zeros(num_channels))
        self.register_buffer("feature_std", torch.ones(num_channels))
        # Joint-angle content above ~6 Hz is noise: the stem already halves the rate (to 15 Hz), which halves the cost.
        self.stem = nn.Conv1d(2 * num_channels + 1, hidden_size, 4, stride=2, padding=1)
        dilations = [3 ** k for k in range(num_layers)]
        self.blocks_high = nn.ModuleList(_ResidualBlock(hidden_size, d) for d in dilations)
        self.down = nn.Conv1d(hidden_size, hidden_size, 4, stride=2, padding=1)
        self.blocks_low = nn.ModuleList(_ResidualBlock(hidden_size, d) for d in dilations)
        learned = self.num_queries - pooled
        self.queries = nn.Parameter(torch.randn(learned, hidden_size) / math.sqrt(hidden_size))
        self.pool = nn.MultiheadAttention(hidden_size, num_heads, batch_first=True)
        if self.statistics_token:
            self.statistics = nn.Linear(2 * hidden_size, hidden_size)
        if self.descriptor_size:
            self.register_buffer("descriptor_mean", torch.zeros(self.descriptor_size))
            self.register_buffer("descriptor_std", torch.ones(self.descriptor_size))
            self.descriptors = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.descriptor_size, 2 * hidden_size),
                                             nn.GELU(), nn.Linear(2 * hidden_size, hidden_size))
        self.norm = nn.LayerNorm(hidden_size)
        if self.readout_sizes:
            width = self.num_queries * hidden_size
            self.readout_heads = nn.ModuleList(nn.Linear(width, n) for n in self.readout_sizes)
            self.readout_embed = nn.ModuleList(nn.Linear(n, hidden_size) for n in self.readout_sizes)
            self.readout_norm = nn.LayerNorm(hidden_size)

    def _set_mirror(self, channels, signs, readout_mirror) -> None:
        channels = [int(c) for c in channels]
        readout_mirror = [[int(k) for k in entry] for entry in readout_mirror]
        if bool(channels) != bool(readout_mirror):
            raise ValueError("mirror_channels and readout_mirror come together (two-view readout)")
        if channels:
            if self.descriptor_size:
                raise ValueError("two-view readout: the descriptor token has no mirror image")
            if sorted(channels) != list(range(self.num_channels)):
                raise ValueError(f"mirror_channels must order the {self.num_channels} channels, got {channels}")
            signs = [float(x) for x in signs] or [1.0] * self.num_channels
            if len(signs) != self.num_channels or any(x not in (1.0, -1.0) for x in signs):
                raise ValueError(f"mirror_signs must be {self.num_channels} signs (1 or -1), got {signs}")
            if len(readout_mirror) != len(self.readout_sizes) or not all(
                    sorted(entry) == list(range(size)) or (size == 1 and not entry)
                    for entry, size in zip(readout_mirror, self.readout_sizes)):
                raise ValueError(f"readout_mirror must order each readout head's outputs {list(self.readout_sizes)}, "
                                 f"got {readout_mirror}")
        # plain lists, not buffers: a non-persistent buffer is left uninitialised when from_pretrained builds the
        # model on the meta device
        self.mirror_signs = signs if channels else []
        self.mirror_channels = channels
        self.readout_mirror = readout_mirror

    @property
    def two_views(self) -> bool:
        """Whether the readout heads read the motion and its mirror image."""
        return bool(self.mirror_channels) and bool(self.readout_sizes)

    @torch.no_grad()
    def set_feature_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store per-channel statistics of training features (std is floored so constant channels stay finite)."""
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=self.feature_mean.dtype))
        self.feature_std.copy_(torch.as_tensor(std, dtype=self.feature_std.dtype).clamp_min(1e-3))

    @torch.no_grad()
    def set_descriptor_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the mean and spread of training descriptors (std floored: some are constant, e.g. on one activity)."""
        if not self.descriptor_size:
            raise ValueError("this motion encoder reads no descriptors (descriptor_size 0)")
        self.descriptor_mean.copy_(torch.as_tensor(mean, dtype=self.descriptor_mean.dtype))
        self.descriptor_std.copy_(torch.as_tensor(std, dtype=self.descriptor_std.dtype).clamp_min(1e-6))

    def forward(
        self,
        motion_values: torch.Tensor,
        motion_mask: torch.Tensor,
        coordinate_mask: torch.Tensor,
        motion_durations: torch.Tensor,
        motion_descriptors: torch.Tensor | None = None,
        return_readout: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        r"""
        Args:
            motion_values (`torch.FloatTensor` of shape `(batch, frames, channels)`): features, frames a multiple of 4.
            motion_mask (`torch.BoolTensor` of shape `(batch, frames)`): real frames (padding after them).
            coordinate_mask (`torch.BoolTensor` of shape `(batch, channels)`): channels present in the recording.
            motion_durations (`torch.FloatTensor` of shape `(batch,)`): length of the whole recording in seconds.
            motion_descriptors (`torch.FloatTensor` of shape `(batch, descriptor_size)`, *optional*): the whole
                recording's descriptors; required when `descriptor_size` is set, refused otherwise.
            return_readout (`bool`, *optional*, defaults to `False`): also return each readout head's output.

        Returns:
            `torch.FloatTensor` of shape `(batch, num_tokens, hidden)`: the query tokens, then the readout tokens;
            with `return_readout`, a tuple of those and the list of head outputs `(batch, size)` (empty without
            readout heads).
        """
        queries = self.encode(motion_values, motion_mask, coordinate_mask, motion_durations, motion_descriptors)
        if not self.readout_sizes:
            return (queries, []) if return_readout else queries
        tokens = []
        outputs = self.readout(queries)
        if self.two_views:
            signs = torch.tensor(self.mirror_signs, dtype=motion_values.dtype, device=motion_values.device)
            image = self.readout(self.encode(motion_values[:, :, self.mirror_channels] * signs, motion_mask,
                                             coordinate_mask[:, self.mirror_channels], motion_durations))
            outputs = [self._average_views(size, output, mirrored, order) for size, output, mirrored, order
                       in zip(self.readout_sizes, outputs, image, self.readout_mirror)]
        for size, embed, output in zip(self.readout_sizes, self.readout_embed, outputs):
            reading = torch.log_softmax(output.float(), -1) if size > 1 else output.float()
            tokens.append(embed(reading.to(embed.weight.dtype)))
        readouts = self.readout_norm(torch.stack(tokens, 1).to(self.readout_norm.weight.dtype))
        soft = torch.cat([queries, readouts.to(queries.dtype)], 1)
        return (soft, outputs) if return_readout else soft

    @staticmethod
    def _average_views(size: int, output: torch.Tensor, mirrored: torch.Tensor, order: list[int]) -> torch.Tensor:
        """One head's reading of both views: the geometric mean of the probabilities (as log-probabilities), or the
        mean of the values."""
        if size == 1:
            return (output + mirrored) / 2
        mean = (torch.log_softmax(output.float(), -1) + torch.log_softmax(mirrored.float(), -1)[:, order]) / 2
        return torch.log_softmax(mean, -1)  # the normalised geometric mean of the two views' probabilities

    def readout(self, queries: torch.Tensor) -> list[torch.Tensor]:
        """Each readout head's output `(batch, size)` on the query tokens `(batch, num_queries, hidden)`."""
        flat = queries.flatten(1)
        return [head(flat.to(head.weight.dtype)) for head in self.readout_heads]

    def encode(
        self,
        motion_values: torch.Tensor,
        motion_mask: torch.Tensor,
        coordinate_mask: torch.Tensor,
        motion_durations: torch.Tensor,
        motion_descriptors: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The query tokens `(batch, num_queries, hidden)` (the arguments as in `forward`)."""
        dtype = self.stem.weight.dtype
        frames = motion_values.shape[1]
        if frames % MOTION_FRAME_MULTIPLE:
            raise ValueError(f"motion_values: {frames} frames, expected a multiple of {MOTION_FRAME_MULTIPLE}")
        if self.descriptor_size:
            expected = (motion_values.shape[0], self.descriptor_size)
            if motion_descriptors is None or tuple(motion_descriptors.shape) != expected:
                got = "none" if motion_descriptors is None else f"shape {tuple(motion_descriptors.shape)}"
                raise ValueError(f"motion_descriptors: this motion encoder reads {self.descriptor_size} descriptors "
                                 f"per motion, expected shape {expected}, got {got}")
        elif motion_descriptors is not None:
            raise ValueError("motion_descriptors: this motion encoder reads no descriptors (descriptor_size 0)")
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
        tokens = pooled + queries
        if self.statistics_token:
            count = mask.sum(2).clamp_min(1.0)  # (batch, 1): real frames at 7.5 Hz
            mean = x.sum(2) / count
            std = ((((x - mean[:, :, None]) * mask) ** 2).sum(2) / count + 1e-5).sqrt()
            tokens = torch.cat([tokens, self.statistics(torch.cat([mean, std], 1))[:, None]], 1)
        if self.descriptor_size:
            z = (motion_descriptors.float() - self.descriptor_mean.float()) / self.descriptor_std.float()
            z = torch.nan_to_num(z, nan=0.0).clamp(-8.0, 8.0).to(dtype)
            tokens = torch.cat([tokens, self.descriptors(z)[:, None]], 1)
        return self.norm(tokens)  # (batch, num_queries, hidden)


class BiomechGPTMultiModalProjector(nn.Module):
    """Two-layer MLP from the motion encoder's token size to the language model's hidden size (as LLaVA's)."""

    def __init__(self, motion_hidden_size: int, text_hidden_size: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(motion_hidden_size, text_hidden_size)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(text_hidden_size, text_hidden_size)

    def forward(self, motion_features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(motion_features)))
