"""BiomechGPT: a causal language model that reads motion (soft tokens from a motion encoder, or discrete codes) and
answers clinical questions.

`BiomechGPTForCausalLM` wraps any Hugging Face causal LM (built from `config.text_config`) whose vocabulary is
extended by the motion markers and one token per MotionTokenizer code; a model that reads continuous motion also
holds a `motion_encoder` and a `multi_modal_projector` that put the encoder's soft tokens at the processor's
placeholders, as LLaVA places image patches. It answers with `answer(...)`, `answer_batch(...)` and
`answer_participant(...)`, which `BiomechGPTAnsweringMixin` (`answering_biomechgpt.py`) provides: this file is the
network, that one the answering engine.

This file imports only torch, transformers and its sibling files so it can be uploaded to the Hub as remote code.
The processor (text tokenizer + MotionTokenizer + the answer sets learned from the training corpus) is found with
`AutoProcessor` from the model's folder, so this file does not import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .answering_biomechgpt import BiomechGPTAnswer, BiomechGPTAnsweringMixin, MotionPrefix
from .configuration_biomechgpt import BiomechGPTConfig
from .modeling_motion_encoder import BiomechGPTMotionEncoder, BiomechGPTMultiModalProjector

__all__ = [
    "BiomechGPTAnswer",
    "BiomechGPTPreTrainedModel",
    "BiomechGPTForCausalLM",
    "MotionPrefix",
    "init_new_token_embeddings",
    "register_auto_classes",
]


def init_new_token_embeddings(
    weight: torch.Tensor,
    rows: Sequence[int] | torch.Tensor,
    *,
    reference_rows: int,
    codebook: torch.Tensor | None = None,
    codebook_rows: Sequence[int] | torch.Tensor | None = None,
    noise_scale: float = 0.5,
    generator: torch.Generator | None = None,
) -> None:
    """Initialise new rows of an embedding (or output) matrix in place, at the scale of the existing rows.

    Each new row is the mean of the first `reference_rows` rows plus a perturbation with the per-dimension standard
    deviation of those rows times `noise_scale`. The perturbation is random noise, or, for rows that stand for
    MotionTokenizer codes when `codebook` is given, the codebook vector through a fixed random projection: codes
    that are close in the codebook then start close in the language model, which speeds up learning.

    Args:
        weight (`torch.Tensor` of shape `(vocab, hidden)`): the matrix to edit in place.
        rows (`Sequence[int]`): the rows to initialise.
        reference_rows (`int`): how many leading rows are trained text tokens to take statistics from.
        codebook (`torch.Tensor` of shape `(codebook_size, code_dim)`, *optional*): the VQ codebook vectors.
        codebook_rows (`Sequence[int]`, *optional*): the rows of `weight` for codes `0 .. codebook_size - 1`.
        noise_scale (`float`, *optional*, defaults to 0.5): perturbation size relative to the rows' std.
        generator (`torch.Generator`, *optional*): for reproducible noise.
    """
    rows = torch.as_tensor(list(rows) if not isinstance(rows, torch.Tensor) else rows, dtype=torch.long)
    if rows.numel() == 0:
        return
    with torch.no_grad():
        reference = weight[:reference_rows].float()
        mean = reference.mean(0)  # (hidden,)
        std = reference.std(0).clamp_min(1e-6) if reference_rows > 1 else torch.full_like(mean, 0.02)
        noise = torch.randn(rows.numel(), weight.shape[1], generator=generator)  # (rows, hidden)
        if codebook is not None and codebook_rows is not None:
            code_rows = torch.as_tensor(list(codebook_rows), dtype=torch.long)
            codes = codebook.detach().float().cpu()
            codes = (codes - codes.mean(0)) / codes.std(0).clamp_min(1e-6)  # (codebook, code_dim) standardised
            projection = torch.randn(codes.shape[1], weight.shape[1], generator=generator) / math.sqrt(codes.shape[1])
            projected = codes @ projection  # (codebook, hidden), unit variance per dimension
            position = {int(r): i for i, r in enumerate(rows.tolist())}
            for code, row in enumerate(code_rows.tolist()):
                if row in position:
                    noise[position[row]] = projected[code]
        values = mean + noise * std * noise_scale
        weight[rows] = values.to(weight.dtype)


class BiomechGPTPreTrainedModel(PreTrainedModel):
    config_class = BiomechGPTConfig
    base_model_prefix = ""
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = False


class BiomechGPTForCausalLM(BiomechGPTPreTrainedModel, BiomechGPTAnsweringMixin, GenerationMixin):
    r"""
    A causal language model over text and motion tokens.

    The wrapped model is `AutoModelForCausalLM.from_config(config.text_config)`, so any Hugging Face causal LM family
    works; its embedding matrix has `config.vocab_size` rows (text, the two motion markers, one row per code).

    Args:
        config ([`BiomechGPTConfig`]): the model configuration.
        language_model (`PreTrainedModel`, *optional*): an already built (e.g. pretrained or 4-bit quantised) causal
            LM to wrap instead of building a fresh one from `config.text_config`.
    """

    # The wrapper ties nothing itself: its language model ties its own output embedding to its input embedding. An
    # empty mapping (not None) makes peft look for tied weights in the submodules, so a LoRA adapter's trained rows of
    # the motion vocabulary (`trainable_token_indices`) reach the tied output rows too: the model trains and loads
    # unmerged as it runs merged.
    _tied_weights_keys: dict[str, str] = {}

    def __init__(self, config: BiomechGPTConfig, language_model: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        self.language_model = language_model or AutoModelForCausalLM.from_config(config.text_config)
        if config.reads_features:
            self._new_motion_modules()
        self._processor = None
        self._prefix_memo: MotionPrefix | None = None  # the last motion's prefix, for the next call about it
        self.post_init()

    # -- the wrapped model's plumbing ------------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        motion_values: torch.FloatTensor | None = None,
        motion_mask: torch.BoolTensor | None = None,
        coordinate_mask: torch.BoolTensor | None = None,
        motion_durations: torch.FloatTensor | None = None,
        motion_descriptors: torch.FloatTensor | None = None,
        motion_features: torch.FloatTensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, sequence)`): text and motion token ids (see
                [`BiomechGPTProcessor`]).
            labels (`torch.LongTensor` of shape `(batch, sequence)`, *optional*): targets for the next-token loss;
                `-100` marks positions without loss (the processor keeps only answer tokens).
            motion_values (`torch.FloatTensor` of shape `(batch, frames, channels)`, *optional*): feature frames of
                each row's motion, for models that read them (`config.motion_input` "continuous" or "both"); see
                [`BiomechGPTProcessor.collate_motion_inputs`] for them and `motion_mask`, `coordinate_mask`,
                `motion_durations` and (with `config.motion_descriptor_size`) `motion_descriptors`.
            motion_features (`torch.FloatTensor` of shape `(batch, num_motion_tokens, encoder_hidden)`, *optional*):
                the motion encoder's output, computed beforehand (e.g. once per trial while the encoder is frozen), in
                place of `motion_values`.

        Returns:
            [`~modeling_outputs.CausalLMOutputWithPast`]: the wrapped model's output.
        """
        if motion_values is not None or motion_features is not None:
            inputs_embeds = self.embed_inputs(input_ids, motion_values=motion_values, motion_mask=motion_mask,
                                              coordinate_mask=coordinate_mask, motion_durations=motion_durations,
                                              motion_descriptors=motion_descriptors, motion_features=motion_features)
            input_ids = None
        return self.language_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    def _new_motion_modules(self) -> None:
        """Fresh `motion_encoder` and `multi_modal_projector` for this config (PyTorch's default initialisation)."""
        config = self.config
        self.motion_encoder = BiomechGPTMotionEncoder(
            config.motion_feature_channels, config.motion_encoder_hidden_size, config.motion_encoder_layers,
            config.num_motion_tokens, readout_sizes=config.motion_readout_sizes or (),
            readout_tasks=config.motion_readout_tasks or (), statistics_token=config.motion_statistics_token,
            descriptor_size=config.motion_descriptor_size, mirror_channels=config.motion_mirror_channels or (),
            mirror_signs=config.motion_mirror_signs or (), readout_mirror=config.motion_readout_mirror or ())
        self.multi_modal_projector = BiomechGPTMultiModalProjector(
            config.motion_encoder_hidden_size, config.get_text_config(decoder=True).hidden_size)

    def get_motion_features(self, motion_values: torch.Tensor, motion_mask: torch.Tensor,
                            coordinate_mask: torch.Tensor, motion_durations: torch.Tensor,
                            motion_descriptors: torch.Tensor | None = None) -> torch.Tensor:
        """The motion encoder's soft tokens `(batch, num_motion_tokens, encoder_hidden)`, before the projector."""
        if not self.config.reads_features:
            raise ValueError(f"this model reads motion as {self.config.motion_input!r}: it has no motion encoder")
        return self.motion_encoder(motion_values, motion_mask, coordinate_mask, motion_durations, motion_descriptors)

    def embed_inputs(self, input_ids: torch.LongTensor, *, motion_values: torch.Tensor | None = None,
                     motion_mask: torch.Tensor | None = None, coordinate_mask: torch.Tensor | None = None,
                     motion_durations: torch.Tensor | None = None, motion_descriptors: torch.Tensor | None = None,
                     motion_features: torch.Tensor | None = None) -> torch.Tensor:
        """Input embeddings of `input_ids` with each row's projected motion tokens at its placeholder positions
        (`config.num_motion_tokens` placeholders per row, as LLaVA expands its image token)."""
        embeds = self.get_input_embeddings()(input_ids)  # (batch, sequence, hidden)
        if motion_features is None:
            if motion_values is None or motion_mask is None or coordinate_mask is None or motion_durations is None:
                raise ValueError("motion_values needs motion_mask, coordinate_mask and motion_durations")
            motion_features = self.get_motion_features(motion_values, motion_mask, coordinate_mask, motion_durations,
                                                       motion_descriptors)
        projected = self.multi_modal_projector(motion_features.to(self.multi_modal_projector.linear_1.weight.dtype))
        slots = input_ids == self.config.motion_feature_token_id  # (batch, sequence)
        expected = projected.shape[0] * projected.shape[1]
        if int(slots.sum()) != expected or projected.shape[0] != input_ids.shape[0]:
            raise ValueError(f"input_ids hold {int(slots.sum())} motion placeholders for {projected.shape[0]} motions "
                             f"of {projected.shape[1]} tokens each ({input_ids.shape[0]} rows)")
        return embeds.masked_scatter(slots[..., None], projected.to(embeds.dtype))

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """As [`~PreTrainedModel.from_pretrained`]; the motion encoder's and projector's weights then get their own
        memory. Loaded weights are views into the safetensors file at whatever byte offset it gives them, and on
        unaligned weights oneDNN's convolutions sum in another (equally valid) order: a reloaded encoder would then
        differ from the saved one in the last bits (a numeric answer's spread in its seventh digit). These weights are
        small, so copying them is free."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # output_loading_info=True returns a tuple
        if model.config.reads_features:
            with torch.no_grad():
                for module in (model.motion_encoder, model.multi_modal_projector):
                    for tensor in (*module.parameters(), *module.buffers()):
                        tensor.data = tensor.data.clone()
        return loaded

    # -- building from a text-only model ---------------------------------------------------------------------------
    @classmethod
    def from_language_model(
        cls,
        language_model: PreTrainedModel,
        tokenizer: Any,
        *,
        codebook_size: int,
        codebook: torch.Tensor | None = None,
        motion_tokenizer_config: dict | None = None,
        seed: int = 0,
        motion_start_token: str = "<motion>",
        motion_end_token: str = "</motion>",
        motion_input: str = "codes",
        motion_encoder: dict | None = None,
    ) -> BiomechGPTForCausalLM:
        """Extend a text-only causal LM and its tokenizer with the motion vocabulary.

        The markers are added to `tokenizer` (in place) as special tokens; the embedding matrix (and an untied output
        matrix) grows to hold the markers and `codebook_size` motion tokens, whose rows are initialised with
        [`init_new_token_embeddings`] (around the mean embedding, or from `codebook` through a projection).

        Args:
            language_model (`PreTrainedModel`): a causal LM (pretrained, random or quantised).
            tokenizer (`PreTrainedTokenizerBase`): its text tokenizer; gains the two marker tokens.
            codebook_size (`int`): number of MotionTokenizer codes.
            codebook (`torch.Tensor` of shape `(codebook_size, dim)`, *optional*): the MotionTokenizer's codebook.
            motion_tokenizer_config (`dict`, *optional*): stored in the config for provenance.
            seed (`int`, *optional*, defaults to 0): seed of the new rows' noise and projection.
            motion_input (`str`, *optional*, defaults to `"codes"`): "codes", "continuous" or "both" (see
                [`BiomechGPTConfig`]); the last two add the `<motion_features>` placeholder token and a motion encoder.
            motion_encoder (`dict`, *optional*): encoder fields of [`BiomechGPTConfig`] (`num_motion_tokens`,
                `motion_feature_channels`, `motion_encoder_hidden_size`, `motion_encoder_layers`,
                `motion_statistics_token`, `motion_readout_tasks`, `motion_readout_sizes`, the mirror fields).

        Returns:
            [`BiomechGPTForCausalLM`] wrapping `language_model`.
        """
        old_rows = language_model.get_input_embeddings().weight.shape[0]
        # Statistics come from the rows of real text tokens only (Qwen and others pad the matrix with unused rows).
        reference_rows = min(len(tokenizer), old_rows)
        feature_token = BiomechGPTConfig.motion_feature_token
        markers = [motion_start_token, motion_end_token] + ([feature_token] if motion_input != "codes" else [])
        tokenizer.add_tokens(markers, special_tokens=True)
        start_id = tokenizer.convert_tokens_to_ids(motion_start_token)
        end_id = tokenizer.convert_tokens_to_ids(motion_end_token)
        feature_id = tokenizer.convert_tokens_to_ids(feature_token) if motion_input != "codes" else None
        offset = max(len(tokenizer), old_rows)
        language_model.resize_token_embeddings(offset + codebook_size, mean_resizing=False)
        new_rows = sorted({start_id, end_id, *([feature_id] if feature_id is not None else []),
                           *range(old_rows, offset + codebook_size)})
        generator = torch.Generator().manual_seed(seed)
        code_rows = range(offset, offset + codebook_size)
        if codebook is not None and tuple(codebook.shape[:1]) != (codebook_size,):
            raise ValueError(f"codebook has {codebook.shape[0]} vectors but codebook_size is {codebook_size}")
        input_embeddings = language_model.get_input_embeddings()
        output_embeddings = language_model.get_output_embeddings()
        tied = output_embeddings is not None and output_embeddings.weight is input_embeddings.weight
        # Tied rows are output rows too: the mean text row scores the mean text logit, below the best text token,
        # and the perturbation around it is kept small so that no new token outscores the text a prompt predicts
        # (SmolLM2-135M: best new logit 17-23 at 0.5, 12-18 at 0.25, against 25-31 for the best text token).
        init_new_token_embeddings(input_embeddings.weight, new_rows, reference_rows=reference_rows,
                                  codebook=codebook, codebook_rows=code_rows, generator=generator,
                                  noise_scale=0.25 if tied else 0.5)
        if output_embeddings is not None and not tied:
            # Output rows get noise only and a lower mean logit is not needed: motion tokens are never targets.
            init_new_token_embeddings(output_embeddings.weight, new_rows, reference_rows=reference_rows,
                                      generator=generator)
        text_config = language_model.config
        config = cls.config_class(
            text_config=text_config.to_dict(),
            codebook_size=codebook_size,
            motion_token_offset=offset,
            motion_start_token_id=start_id,
            motion_end_token_id=end_id,
            motion_start_token=motion_start_token,
            motion_end_token=motion_end_token,
            motion_tokenizer_config=motion_tokenizer_config,
            motion_input=motion_input,
            motion_feature_token_id=feature_id,
            **(motion_encoder or {}),
        )
        config.text_config = text_config  # keep the live object (quantization and attention settings)
        model = cls(config, language_model=language_model)
        model.generation_config.suppress_tokens = model.non_text_token_ids
        if config.reads_features:  # seeded, in float32 whatever the (possibly 4-bit) LM's dtype, on the LM's device
            torch.manual_seed(seed)
            model._new_motion_modules()
            model.motion_encoder.to(input_embeddings.weight.device)
            model.multi_modal_projector.to(input_embeddings.weight.device)
            _match_embedding_scale(model.multi_modal_projector, input_embeddings.weight[:reference_rows],
                                   config.motion_encoder_hidden_size, generator)
        return model

@torch.no_grad()
def _match_embedding_scale(projector: nn.Module, text_rows: torch.Tensor, in_features: int,
                           generator: torch.Generator) -> None:
    """Scale the projector's last layer so that its soft tokens start at the norm of the text embeddings.

    The encoder's tokens leave a LayerNorm (unit variance); through a freshly initialised MLP they came out ~16x
    longer than the tiny model's text embeddings (norm 11.6 against 0.70), far from anything the language model's
    first layer has seen in a pretrained base. (On the tiny model from scratch it did not change the training loss
    over the first 0.2 epoch: 0.800 against 0.801.)"""
    probe = torch.randn(256, in_features, generator=generator).to(text_rows.device)
    norm = projector(probe.to(projector.linear_1.weight.dtype)).float().norm(dim=-1).mean()
    target = text_rows.float().norm(dim=-1).mean()
    if float(norm) > 0:
        factor = float(target / norm)
        projector.linear_2.weight.mul_(factor)
        projector.linear_2.bias.mul_(factor)


def register_auto_classes() -> None:
    """Register the config and model with the transformers Auto classes (idempotent), and mark them so
    `save_pretrained` writes `auto_map` and copies this code next to the weights."""
    AutoConfig.register(BiomechGPTConfig.model_type, BiomechGPTConfig, exist_ok=True)
    AutoModel.register(BiomechGPTConfig, BiomechGPTForCausalLM, exist_ok=True)
    AutoModelForCausalLM.register(BiomechGPTConfig, BiomechGPTForCausalLM, exist_ok=True)
    BiomechGPTConfig.register_for_auto_class()
    BiomechGPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")
