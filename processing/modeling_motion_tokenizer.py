"""The MotionTokenizer VQ-VAE: a 1-D convolutional encoder / EMA codebook / decoder over motion features.

Padding never changes a trial's codes: every layer zeroes the frames past each trial's (padded) length, which is
exactly what zero padding does at the end of a single unpadded trial, so a batch gives the same codes as one trial
at a time. No layer normalises across time for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_motion_tokenizer import MotionTokenizerConfig

__all__ = [
    "MotionTokenizerModel",
    "MotionTokenizerPreTrainedModel",
    "MotionTokenizerEncoderOutput",
    "MotionTokenizerDecoderOutput",
    "MotionTokenizerOutput",
]


@dataclass
class MotionTokenizerEncoderOutput(ModelOutput):
    r"""
    motion_codes (`torch.LongTensor` of shape `(batch, codes)`):
        Code indices; 0 past each trial's length.
    motion_codes_mask (`torch.BoolTensor` of shape `(batch, codes)`):
        True on real codes.
    latents (`torch.FloatTensor` of shape `(batch, codes, codebook_dim)`):
        Encoder outputs before quantisation.
    """

    motion_codes: torch.LongTensor | None = None
    motion_codes_mask: torch.BoolTensor | None = None
    latents: torch.FloatTensor | None = None


@dataclass
class MotionTokenizerDecoderOutput(ModelOutput):
    r"""
    motion_values (`torch.FloatTensor` of shape `(batch, frames, coordinates)`):
        Decoded features in physical units (see `MotionFeatureExtractor`); `frames = codes * downsample_factor`.
    motion_mask (`torch.BoolTensor` of shape `(batch, frames)`):
        True on frames decoded from real codes.
    """

    motion_values: torch.FloatTensor | None = None
    motion_mask: torch.BoolTensor | None = None


@dataclass
class MotionTokenizerOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor`, scalar):
        `reconstruction_loss + velocity_loss_weight * velocity_loss + commitment_weight * commitment_loss`.
    reconstruction_loss / velocity_loss (`torch.FloatTensor`, scalar):
        Mean absolute error of the normalised features / of their frame-to-frame differences, over present
        coordinates and real frames.
    commitment_loss (`torch.FloatTensor`, scalar):
        Mean squared distance between encoder outputs and their codes.
    motion_values (`torch.FloatTensor` of shape `(batch, frames, coordinates)`):
        Reconstructed features in physical units.
    motion_codes, motion_codes_mask, latents:
        As in [`MotionTokenizerEncoderOutput`].
    perplexity (`torch.FloatTensor`, scalar):
        Perplexity of the code distribution over this batch's real codes.
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    velocity_loss: torch.FloatTensor | None = None
    commitment_loss: torch.FloatTensor | None = None
    motion_values: torch.FloatTensor | None = None
    motion_codes: torch.LongTensor | None = None
    motion_codes_mask: torch.BoolTensor | None = None
    latents: torch.FloatTensor | None = None
    perplexity: torch.FloatTensor | None = None


class MotionTokenizerResidualBlock(nn.Module):
    """`x + conv1x1(relu(dilated_conv3(relu(x))))`, zeroed past the valid frames."""

    def __init__(self, hidden_size: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(hidden_size, hidden_size, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(hidden_size, hidden_size, 1)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return hidden + self.conv2(F.relu(self.conv1(F.relu(hidden)))) * mask


class MotionTokenizerEncoder(nn.Module):
    def __init__(self, config: MotionTokenizerConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        # input: normalised features plus one presence channel per coordinate
        self.conv_in = nn.Conv1d(2 * config.num_coordinates, hidden, 3, padding=1)
        self.down = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for _ in range(config.num_downsampling_layers):
            self.down.append(nn.Conv1d(hidden, hidden, 4, stride=2, padding=1))
            self.blocks.append(
                nn.ModuleList(
                    MotionTokenizerResidualBlock(hidden, config.dilation_growth**i)
                    for i in range(config.num_residual_blocks)
                )
            )
        self.conv_out = nn.Conv1d(hidden, config.codebook_dim, 3, padding=1)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`inputs` (batch, 2 * coords, frames), `mask` (batch, 1, frames) float -> (batch, codebook_dim, codes)."""
        hidden = self.conv_in(inputs) * mask
        for down, blocks in zip(self.down, self.blocks):
            mask = mask[..., ::2]
            hidden = down(hidden) * mask
            for block in blocks:
                hidden = block(hidden, mask)
        return self.conv_out(F.relu(hidden)) * mask


class MotionTokenizerDecoder(nn.Module):
    def __init__(self, config: MotionTokenizerConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.conv_in = nn.Conv1d(config.codebook_dim, hidden, 3, padding=1)
        self.up = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for _ in range(config.num_downsampling_layers):
            self.blocks.append(
                nn.ModuleList(
                    MotionTokenizerResidualBlock(hidden, config.dilation_growth**i)
                    for i in reversed(range(config.num_residual_blocks))
                )
            )
            self.up.append(nn.Conv1d(hidden, hidden, 3, padding=1))
        self.conv_out = nn.Conv1d(hidden, config.num_coordinates, 3, padding=1)

    def forward(self, quantized: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`quantized` (batch, codebook_dim, codes), `mask` (batch, 1, codes) -> (batch, coords, frames)."""
        hidden = self.conv_in(quantized) * mask
        for blocks, up in zip(self.blocks, self.up):
            for block in blocks:
                hidden = block(hidden, mask)
            mask = mask.repeat_interleave(2, dim=-1)
            hidden = up(F.interpolate(hidden, scale_factor=2.0, mode="nearest")) * mask
        return self.conv_out(F.relu(hidden)) * mask


class MotionTokenizerQuantizer(nn.Module):
    """Euclidean codebook updated by exponential moving averages (no codebook gradient), with dead-code re-seeding.

    All state is in persistent buffers, so a saved tokenizer or checkpoint resumes the EMA exactly.
    """

    def __init__(self, config: MotionTokenizerConfig) -> None:
        super().__init__()
        self.codebook_size = config.codebook_size
        self.decay = config.ema_decay
        self.dead_code_patience = config.dead_code_patience
        self.register_buffer("codebook", torch.zeros(config.codebook_size, config.codebook_dim))
        self.register_buffer("ema_cluster_size", torch.zeros(config.codebook_size))
        self.register_buffer("ema_embed_sum", torch.zeros(config.codebook_size, config.codebook_dim))
        # training steps since each code was last chosen
        self.register_buffer("steps_unused", torch.zeros(config.codebook_size, dtype=torch.long))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def nearest(self, latents: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of `latents` (n, dim)."""
        # |z - e|^2 = |z|^2 - 2 z.e + |e|^2; |z|^2 does not change the argmin
        distances = self.codebook.pow(2).sum(1)[None, :] - 2.0 * latents @ self.codebook.t()  # (n, codes)
        return distances.argmin(dim=1)

    @torch.no_grad()
    def update(self, latents: torch.Tensor, indices: torch.Tensor) -> None:
        """One EMA step from the valid `latents` (n, dim) and their `indices` (n,)."""
        counts = torch.bincount(indices, minlength=self.codebook_size).to(latents.dtype)
        sums = torch.zeros_like(self.ema_embed_sum).index_add_(0, indices, latents)
        self.ema_cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.ema_embed_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        # Laplace smoothing keeps rarely used codes from dividing by ~0
        total = self.ema_cluster_size.sum()
        eps = 1e-5
        size = (self.ema_cluster_size + eps) / (total + self.codebook_size * eps) * total
        self.codebook.copy_(self.ema_embed_sum / size[:, None])

    @torch.no_grad()
    def reseed(self, latents: torch.Tensor, code_ids: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Set the codes `code_ids` to random rows of `latents` (n, dim), with an average usage count."""
        if code_ids.numel() == 0 or latents.shape[0] == 0:
            return
        picks = torch.randint(latents.shape[0], (code_ids.numel(),), generator=generator)
        # a small random offset separates codes that drew the same latent
        noise = torch.randn(code_ids.numel(), latents.shape[1], generator=generator) * 1e-3
        chosen = latents[picks] + noise
        count = latents.shape[0] / self.codebook_size
        self.codebook[code_ids] = chosen
        self.ema_embed_sum[code_ids] = chosen * count
        self.ema_cluster_size[code_ids] = count
        self.steps_unused[code_ids] = 0

    @torch.no_grad()
    def replace_dead_codes(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Re-seed the codes unused for `dead_code_patience` steps from random rows of `latents` (n, dim);
        initialise the whole codebook from them on first use. Returns the number of codes re-seeded."""
        if not bool(self.initialized):
            self.reseed(latents, torch.arange(self.codebook_size), generator)
            self.initialized.fill_(True)
            return self.codebook_size
        dead = torch.nonzero(self.steps_unused >= self.dead_code_patience).flatten()
        self.reseed(latents, dead, generator)
        return int(dead.numel())


class MotionTokenizerPreTrainedModel(PreTrainedModel):
    config_class = MotionTokenizerConfig
    config: MotionTokenizerConfig
    base_model_prefix = "motion_tokenizer"
    main_input_name = "motion_values"

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv1d):
            # PyTorch's default convolution initialisation (the library default, normal(0.02), is too small for a
            # normalisation-free conv stack)
            init.kaiming_uniform_(module.weight, a=5**0.5)
            if module.bias is not None:
                bound = 1.0 / (module.in_channels * module.kernel_size[0]) ** 0.5
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, MotionTokenizerQuantizer):
            init.normal_(module.codebook)
            init.ones_(module.ema_cluster_size)
            init.copy_(module.ema_embed_sum, module.codebook)
            init.zeros_(module.steps_unused)
            init.zeros_(module.initialized)
        elif isinstance(module, MotionTokenizerModel):
            init.zeros_(module.feature_mean)
            init.ones_(module.feature_std)


class MotionTokenizerModel(MotionTokenizerPreTrainedModel):
    r"""
    The MotionTokenizer VQ-VAE. Inputs are the outputs of `MotionFeatureExtractor`: raw features
    `motion_values` (batch, frames, coordinates) with `frames` a multiple of `downsample_factor`, `motion_mask`
    (batch, frames) and `coordinate_mask` (batch, coordinates). The model normalises them with its stored
    statistics (`feature_mean`, `feature_std`), sets missing coordinates to 0 and adds one presence channel per
    coordinate.
    """

    def __init__(self, config: MotionTokenizerConfig) -> None:
        super().__init__(config)
        self.register_buffer("feature_mean", torch.zeros(config.num_coordinates))
        self.register_buffer("feature_std", torch.ones(config.num_coordinates))
        self.encoder = MotionTokenizerEncoder(config)
        self.quantizer = MotionTokenizerQuantizer(config)
        self.decoder = MotionTokenizerDecoder(config)
        self.post_init()

    # ----------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def set_feature_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the per-channel normalisation statistics (computed on the training split)."""
        mean = torch.as_tensor(mean, dtype=self.feature_mean.dtype)
        std = torch.as_tensor(std, dtype=self.feature_std.dtype)
        if mean.shape != self.feature_mean.shape or std.shape != self.feature_std.shape:
            raise ValueError(f"statistics must have shape {tuple(self.feature_mean.shape)}")
        if not torch.all(std > 0):
            raise ValueError("feature_std must be positive")
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std)

    def normalize(self, motion_values: torch.Tensor, coordinate_mask: torch.Tensor) -> torch.Tensor:
        """(batch, frames, coords) physical features -> normalised, 0 in missing coordinates."""
        normalized = (motion_values - self.feature_mean) / self.feature_std
        return normalized * coordinate_mask[:, None, :].to(normalized.dtype)

    def denormalize(self, normalized: torch.Tensor) -> torch.Tensor:
        return normalized * self.feature_std + self.feature_mean

    def _check_inputs(self, motion_values, motion_mask, coordinate_mask):
        if motion_values.dim() != 3 or motion_values.shape[-1] != self.config.num_coordinates:
            raise ValueError(
                f"motion_values must have shape (batch, frames, {self.config.num_coordinates}), "
                f"got {tuple(motion_values.shape)}"
            )
        batch, frames, coords = motion_values.shape
        if frames % self.config.downsample_factor:
            raise ValueError(f"frames ({frames}) must be a multiple of {self.config.downsample_factor}")
        if motion_mask is None:
            motion_mask = torch.ones(batch, frames, dtype=torch.bool, device=motion_values.device)
        if coordinate_mask is None:
            coordinate_mask = torch.ones(batch, coords, dtype=torch.bool, device=motion_values.device)
        return motion_values.to(self.feature_mean.dtype), motion_mask.bool(), coordinate_mask.bool()

    def _encode_latents(self, motion_values, motion_mask, coordinate_mask):
        normalized = self.normalize(motion_values, coordinate_mask)  # (batch, frames, coords)
        presence = coordinate_mask[:, None, :].expand_as(normalized).to(normalized.dtype)
        inputs = torch.cat([normalized, presence], dim=-1).transpose(1, 2)  # (batch, 2 * coords, frames)
        frame_mask = motion_mask[:, None, :].to(inputs.dtype)
        latents = self.encoder(inputs * frame_mask, frame_mask)  # (batch, dim, codes)
        codes_mask = motion_mask[:, :: self.config.downsample_factor]  # (batch, codes)
        return normalized, latents.transpose(1, 2), codes_mask

    def _quantize(self, latents: torch.Tensor, codes_mask: torch.Tensor):
        batch, n_codes, dim = latents.shape
        flat = latents.reshape(-1, dim)
        indices = self.quantizer.nearest(flat).reshape(batch, n_codes)
        indices = indices.masked_fill(~codes_mask, 0)
        return indices

    # ----------------------------------------------------------------------------------------------------------

    def encode(
        self,
        motion_values: torch.Tensor,
        motion_mask: torch.Tensor | None = None,
        coordinate_mask: torch.Tensor | None = None,
    ) -> MotionTokenizerEncoderOutput:
        """Motion features -> code indices, one per `downsample_factor` frames."""
        motion_values, motion_mask, coordinate_mask = self._check_inputs(motion_values, motion_mask, coordinate_mask)
        _, latents, codes_mask = self._encode_latents(motion_values, motion_mask, coordinate_mask)
        codes = self._quantize(latents, codes_mask)
        return MotionTokenizerEncoderOutput(motion_codes=codes, motion_codes_mask=codes_mask, latents=latents)

    def decode(
        self, motion_codes: torch.Tensor, motion_codes_mask: torch.Tensor | None = None
    ) -> MotionTokenizerDecoderOutput:
        """Code indices (batch, codes) -> features in physical units (batch, codes * downsample_factor, coords)."""
        if motion_codes.dim() != 2:
            raise ValueError(f"motion_codes must have shape (batch, codes), got {tuple(motion_codes.shape)}")
        if motion_codes_mask is None:
            motion_codes_mask = torch.ones_like(motion_codes, dtype=torch.bool)
        motion_codes_mask = motion_codes_mask.bool()
        valid = motion_codes[motion_codes_mask]
        if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= self.config.codebook_size):
            raise ValueError(f"motion_codes must lie in [0, {self.config.codebook_size})")
        quantized = self.quantizer.codebook[motion_codes.masked_fill(~motion_codes_mask, 0)]  # (batch, codes, dim)
        return self._decode_quantized(quantized, motion_codes_mask)

    def _decode_quantized(self, quantized: torch.Tensor, codes_mask: torch.Tensor) -> MotionTokenizerDecoderOutput:
        mask = codes_mask[:, None, :].to(quantized.dtype)
        normalized = self.decoder(quantized.transpose(1, 2) * mask, mask).transpose(1, 2)  # (batch, frames, coords)
        frame_mask = codes_mask.repeat_interleave(self.config.downsample_factor, dim=1)
        return MotionTokenizerDecoderOutput(motion_values=self.denormalize(normalized), motion_mask=frame_mask)

    def forward(
        self,
        motion_values: torch.Tensor,
        motion_mask: torch.Tensor | None = None,
        coordinate_mask: torch.Tensor | None = None,
        loss_coordinate_mask: torch.Tensor | None = None,
        update_codebook: bool | None = None,
    ) -> MotionTokenizerOutput:
        r"""
        Encode, quantise (straight-through in training), decode and compute the losses.

        Args:
            loss_coordinate_mask (`torch.BoolTensor` of shape `(batch, coordinates)`, *optional*):
                Coordinates scored by the reconstruction losses; defaults to `coordinate_mask`. Training passes the
                true presence here while hiding some of it from the encoder, so the decoder learns to fill in
                coordinates that a recording lacks.
            update_codebook (`bool`, *optional*):
                Take one EMA step on the codebook; defaults to `self.training`.
        """
        motion_values, motion_mask, coordinate_mask = self._check_inputs(motion_values, motion_mask, coordinate_mask)
        if loss_coordinate_mask is None:
            loss_coordinate_mask = coordinate_mask
        loss_coordinate_mask = loss_coordinate_mask.bool()
        _, latents, codes_mask = self._encode_latents(motion_values, motion_mask, coordinate_mask)
        codes = self._quantize(latents, codes_mask)
        valid_latents = latents[codes_mask]  # (n, dim)
        valid_codes = codes[codes_mask]
        if self.training if update_codebook is None else update_codebook:
            self.quantizer.update(valid_latents.detach(), valid_codes)
        quantized = self.quantizer.codebook[codes]  # (batch, codes, dim)
        if self.training:
            # straight-through estimator; in eval the decoder sees the exact codes, so forward == decode(encode)
            quantized = latents + (quantized - latents).detach()
        decoded = self._decode_quantized(quantized, codes_mask)

        target = self.normalize(motion_values, loss_coordinate_mask)
        reconstruction = (decoded.motion_values - self.feature_mean) / self.feature_std
        weight = loss_coordinate_mask[:, None, :].to(target.dtype) * motion_mask[:, :, None].to(target.dtype)
        reconstruction_loss = ((reconstruction - target).abs() * weight).sum() / weight.sum().clamp_min(1.0)
        velocity_weight = weight[:, 1:] * weight[:, :-1]
        velocity_error = (reconstruction.diff(dim=1) - target.diff(dim=1)).abs()
        velocity_loss = (velocity_error * velocity_weight).sum() / velocity_weight.sum().clamp_min(1.0)
        commitment_loss = (valid_latents - self.quantizer.codebook[valid_codes].detach()).pow(2).mean()
        loss = (
            reconstruction_loss
            + self.config.velocity_loss_weight * velocity_loss
            + self.config.commitment_weight * commitment_loss
        )
        counts = torch.bincount(valid_codes, minlength=self.config.codebook_size).to(target.dtype)
        probs = counts / counts.sum().clamp_min(1.0)
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
        return MotionTokenizerOutput(
            loss=loss,
            reconstruction_loss=reconstruction_loss,
            velocity_loss=velocity_loss,
            commitment_loss=commitment_loss,
            motion_values=decoded.motion_values,
            motion_codes=codes,
            motion_codes_mask=codes_mask,
            latents=latents,
            perplexity=perplexity,
        )
