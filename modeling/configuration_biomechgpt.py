"""Configuration of the BiomechGPT motion-language model.

This file imports only transformers so it can be uploaded to the Hub as remote code next to the weights.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

__all__ = ["BiomechGPTConfig", "MOTION_INPUTS"]

# What the language model reads of a motion (see `BiomechGPTConfig.motion_input`).
MOTION_INPUTS = ("codes", "continuous", "both")


class BiomechGPTConfig(PretrainedConfig):
    r"""
    Configuration of [`BiomechGPTForCausalLM`]: a causal language model (any Hugging Face family: Llama, Qwen, Gemma,
    GPT-2, ...) whose vocabulary is extended by one token per MotionTokenizer code and two markers around a motion.

    The token ids are laid out as `[0, motion_token_offset)` for text (the text tokenizer's ids, including the
    `<motion>` / `</motion>` markers it was given) and `[motion_token_offset, motion_token_offset + codebook_size)`
    for motion code `c` at id `motion_token_offset + c`. Motion codes never pass through the text tokenizer: the
    processor splices their ids between the two markers.

    Args:
        text_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the wrapped causal LM. Its `vocab_size` covers text and motion tokens. Defaults to
            a Llama config.
        codebook_size (`int`, *optional*, defaults to 512):
            Number of MotionTokenizer codes, i.e. of motion tokens.
        motion_token_offset (`int`, *optional*):
            Id of motion code 0. Defaults to `text_config.vocab_size - codebook_size` (motion tokens last).
        motion_start_token_id (`int`, *optional*):
            Id of the `<motion>` marker in the text tokenizer.
        motion_end_token_id (`int`, *optional*):
            Id of the `</motion>` marker in the text tokenizer.
        motion_start_token (`str`, *optional*, defaults to `"<motion>"`):
            The string of the start marker.
        motion_end_token (`str`, *optional*, defaults to `"</motion>"`):
            The string of the end marker.
        motion_tokenizer_config (`dict`, *optional*):
            The MotionTokenizer's config as a plain dict (kept for provenance: which codebook the ids refer to).
        tie_word_embeddings (`bool`, *optional*, defaults to `False`):
            Copied from `text_config` when that ties its input and output embeddings.
        motion_input (`str`, *optional*, defaults to `"codes"`):
            What the language model reads of a motion: `"codes"` (the MotionTokenizer's discrete tokens, the paper's
            model), `"continuous"` (soft tokens from [`BiomechGPTMotionEncoder`] over the feature frames, placed
            LLaVA-style at placeholder tokens) or `"both"` (soft tokens, then the codes).
        motion_feature_token (`str`, *optional*, defaults to `"<motion_features>"`):
            The placeholder the processor repeats `num_motion_tokens` times where the soft tokens go.
        motion_feature_token_id (`int`, *optional*):
            Its id in the text tokenizer (required unless `motion_input` is `"codes"`).
        num_motion_tokens (`int`, *optional*, defaults to 16):
            Soft tokens per motion.
        motion_feature_channels (`int`, *optional*, defaults to 33):
            Feature channels of a motion frame (the canonical coordinates).
        motion_encoder_hidden_size (`int`, *optional*, defaults to 64):
            Channels of the motion encoder.
        motion_encoder_layers (`int`, *optional*, defaults to 3):
            Residual blocks per resolution of the motion encoder.
        motion_statistics_token (`bool`, *optional*, defaults to `False`):
            Whether the motion encoder's last query token pools the mean and standard deviation of its frames over
            time instead of attending (see [`BiomechGPTMotionEncoder`]); `biomechgpt train` sets it.
        motion_descriptor_size (`int`, *optional*, defaults to 0):
            With more than 0, the motion encoder's last query token reads that many trial-level descriptors of the
            whole recording (`motion_descriptors.py`; the processor computes them with `motion_descriptors=True`).
        motion_readout_tasks (`list[str]`, *optional*):
            Tasks with a readout token (see [`BiomechGPTMotionEncoder`]); the last of the `num_motion_tokens` soft
            tokens, in this order. Empty: every soft token is a query token.
        motion_readout_sizes (`list[int]`, *optional*):
            Outputs of each readout head: the task's number of classes, or 1 for a numeric task.
        motion_readout_labels (`list[list[str]]`, *optional*):
            Per readout task, the labels of its head's outputs in order (an empty list for a numeric task). Set by
            training; with `motion_readout_scales` it lets an answer read the heads.
        motion_readout_scales (`list[list[float]]`, *optional*):
            Per readout task, a numeric head's `[mean, std, error]` in the task's unit (the head predicts
            `(value - mean) / std`; `error` is its root-mean-square error on the validation split), an empty list for
            a closed-set head.
        motion_mirror_channels (`list[int]`, *optional*):
            Per feature channel, the channel its left-right mirror image takes values from (`MIRROR_ORDER` of
            `motion.py`). With `motion_readout_mirror`, the readout heads read the motion and its mirror image (see
            [`BiomechGPTMotionEncoder`]).
        motion_mirror_signs (`list[float]`, *optional*):
            Per feature channel, the sign of its mirror image (`MIRROR_SIGN`).
        motion_readout_mirror (`list[list[int]]`, *optional*):
            Per readout task, for each output of its head, the output of the mirror image it reads ("left" reads
            "right"); an empty list for a numeric head.
        readout_answer_weight (`float`, *optional*, defaults to 0.0):
            How much the readout heads count in closed-set and numeric answers beside the language model (a product
            of experts): each candidate's probability is the language model's times the head's to this power (for a
            number, a normal density around the head's value with its validation error as the spread). 0 answers from
            the language model alone; `biomechgpt train` sets 1 when it trained the heads. The language model reads
            the same heads through the readout tokens, but a small one puts a number or a rare class into words less
            well than the head holds it (the default run's test split: TUG r 0.71 from the words, 0.97 from the head).

    Example:

    ```python
    >>> from transformers import LlamaConfig
    >>> from biomechgpt import BiomechGPTConfig, BiomechGPTForCausalLM
    >>> text = LlamaConfig(vocab_size=300 + 16, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    ...                    num_attention_heads=4, num_key_value_heads=4)
    >>> config = BiomechGPTConfig(text_config=text, codebook_size=16, motion_start_token_id=298,
    ...                           motion_end_token_id=299)
    >>> config.motion_token_offset
    300
    ```
    """

    model_type = "biomechgpt"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    text_config: dict | PretrainedConfig | None = None
    codebook_size: int = 512
    motion_token_offset: int | None = None
    motion_start_token_id: int | None = None
    motion_end_token_id: int | None = None
    motion_start_token: str = "<motion>"
    motion_end_token: str = "</motion>"
    motion_tokenizer_config: dict | None = None
    tie_word_embeddings: bool = False
    motion_input: str = "codes"
    motion_feature_token: str = "<motion_features>"
    motion_feature_token_id: int | None = None
    num_motion_tokens: int = 16
    motion_feature_channels: int = 33
    motion_encoder_hidden_size: int = 64
    motion_encoder_layers: int = 3
    motion_statistics_token: bool = False
    motion_descriptor_size: int = 0
    motion_readout_tasks: list[str] | None = None
    motion_readout_sizes: list[int] | None = None
    motion_readout_labels: list[list[str]] | None = None
    motion_readout_scales: list[list[float]] | None = None
    motion_mirror_channels: list[int] | None = None
    motion_mirror_signs: list[float] | None = None
    motion_readout_mirror: list[list[int]] | None = None
    readout_answer_weight: float = 0.0

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        # Tying lives in the text config for most families; mirror it so the top-level flag tells the truth.
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True
        if self.codebook_size < 1:
            raise ValueError(f"codebook_size must be at least 1, got {self.codebook_size}")
        vocab_size = self.text_config.vocab_size
        if self.motion_token_offset is None:
            self.motion_token_offset = vocab_size - self.codebook_size
        if self.motion_token_offset < 0 or self.motion_token_offset + self.codebook_size > vocab_size:
            raise ValueError(
                f"motion tokens [{self.motion_token_offset}, {self.motion_token_offset + self.codebook_size}) do not "
                f"fit the text_config vocab_size {vocab_size}"
            )
        if self.motion_input not in MOTION_INPUTS:
            raise ValueError(f"motion_input must be one of {MOTION_INPUTS}, got {self.motion_input!r}")
        if self.motion_input != "codes" and self.motion_feature_token_id is None:
            raise ValueError(f"motion_input {self.motion_input!r} needs motion_feature_token_id (the placeholder id)")
        for name in ("num_motion_tokens", "motion_feature_channels", "motion_encoder_hidden_size",
                     "motion_encoder_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        self.motion_readout_tasks = [str(t) for t in (self.motion_readout_tasks or [])]
        self.motion_readout_sizes = [int(n) for n in (self.motion_readout_sizes or [])]
        if len(self.motion_readout_tasks) != len(self.motion_readout_sizes):
            raise ValueError(f"motion_readout_tasks ({len(self.motion_readout_tasks)}) and motion_readout_sizes "
                             f"({len(self.motion_readout_sizes)}) must have one entry per readout task")
        if any(n < 1 for n in self.motion_readout_sizes):
            raise ValueError(f"motion_readout_sizes must be at least 1 each, got {self.motion_readout_sizes}")
        if not isinstance(self.motion_statistics_token, bool):
            raise ValueError(f"motion_statistics_token must be true or false, got {self.motion_statistics_token!r}")
        if isinstance(self.motion_descriptor_size, bool) or not isinstance(self.motion_descriptor_size, int) \
                or self.motion_descriptor_size < 0:
            raise ValueError(f"motion_descriptor_size must be a whole number of at least 0, got "
                             f"{self.motion_descriptor_size!r}")
        if self.motion_descriptor_size and self.motion_input == "codes":
            raise ValueError("motion_descriptor_size needs a motion encoder (motion_input 'continuous' or 'both')")
        reserved = len(self.motion_readout_tasks) + self.motion_statistics_token + (self.motion_descriptor_size > 0)
        if reserved >= self.num_motion_tokens:
            raise ValueError(f"num_motion_tokens {self.num_motion_tokens} must exceed the "
                             f"{len(self.motion_readout_tasks)} readout tokens"
                             + (" plus the statistics token" if self.motion_statistics_token else "")
                             + (" plus the descriptor token" if self.motion_descriptor_size else "")
                             + " (at least one learned query token)")
        self._check_readout_calibration()
        self._check_mirror()
        for name in ("motion_start_token_id", "motion_end_token_id", "motion_feature_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.motion_token_offset:
                raise ValueError(f"{name} must be a text token id below motion_token_offset, got {value}")

    def _check_readout_calibration(self) -> None:
        tasks, sizes = self.motion_readout_tasks, self.motion_readout_sizes
        labels = [[str(x) for x in entry] for entry in (self.motion_readout_labels or [])]
        scales = [[float(x) for x in entry] for entry in (self.motion_readout_scales or [])]
        for name, entries in (("motion_readout_labels", labels), ("motion_readout_scales", scales)):
            if entries and len(entries) != len(tasks):
                raise ValueError(f"{name} needs one entry per readout task ({len(tasks)}), got {len(entries)}")
        if bool(labels) != bool(scales):
            raise ValueError("motion_readout_labels and motion_readout_scales come together (the heads' calibration)")
        for k, (task, size) in enumerate(zip(tasks, sizes) if labels else ()):
            # a closed-set head names its labels (a corpus may hold a single one); a numeric head names none
            closed = bool(labels[k])
            if (closed and len(labels[k]) != size) or (not closed and size != 1):
                raise ValueError(f"motion_readout_labels[{k}] ({task}): {len(labels[k])} labels for {size} outputs")
            if closed and scales[k]:
                raise ValueError(f"motion_readout_scales[{k}] ({task}): a closed-set head has no scale, got "
                                 f"{scales[k]}")
            if not closed and not (len(scales[k]) == 3 and all(math.isfinite(x) for x in scales[k])
                                   and scales[k][1] > 0 and scales[k][2] > 0):
                raise ValueError(f"motion_readout_scales[{k}] ({task}): a numeric head needs [mean, std, error] with "
                                 f"std and error above 0, got {scales[k]}")
        self.motion_readout_labels = labels or None
        self.motion_readout_scales = scales or None
        weight = float(self.readout_answer_weight)
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"readout_answer_weight must be a finite number >= 0, got {self.readout_answer_weight}")
        if weight > 0 and not (labels and scales):
            raise ValueError("readout_answer_weight above 0 needs motion_readout_labels and motion_readout_scales "
                             "(the heads' calibration, set by training)")
        self.readout_answer_weight = weight

    def _check_mirror(self) -> None:
        channels = [int(c) for c in (self.motion_mirror_channels or [])]
        signs = [float(x) for x in (self.motion_mirror_signs or [])]
        readout = [[int(k) for k in entry] for entry in (self.motion_readout_mirror or [])]
        if bool(channels) != bool(readout):
            raise ValueError("motion_mirror_channels and motion_readout_mirror come together (two-view readout)")
        if channels:
            if self.motion_input == "codes":
                raise ValueError("motion_mirror_channels needs a motion encoder (motion_input 'continuous' or 'both')")
            if self.motion_descriptor_size:
                raise ValueError("motion_mirror_channels: the descriptor token has no mirror image")
            if sorted(channels) != list(range(self.motion_feature_channels)):
                raise ValueError(f"motion_mirror_channels must order the {self.motion_feature_channels} feature "
                                 f"channels, got {channels}")
            if signs and (len(signs) != len(channels) or any(x not in (1.0, -1.0) for x in signs)):
                raise ValueError(f"motion_mirror_signs must be {len(channels)} signs (1 or -1), got {signs}")
            if len(readout) != len(self.motion_readout_sizes) or not all(
                    sorted(entry) == list(range(size)) or (size == 1 and not entry)
                    for entry, size in zip(readout, self.motion_readout_sizes)):
                raise ValueError(f"motion_readout_mirror must order each readout head's outputs "
                                 f"{self.motion_readout_sizes}, got {readout}")
        self.motion_mirror_channels = channels or None
        self.motion_mirror_signs = signs or None
        self.motion_readout_mirror = readout or None

    @property
    def vocab_size(self) -> int:
        """Text plus motion tokens: the rows of the embedding matrix."""
        return self.text_config.vocab_size

    @vocab_size.setter
    def vocab_size(self, value: int) -> None:
        self.text_config.vocab_size = value

    @property
    def reads_codes(self) -> bool:
        """Whether the motion prefix holds the MotionTokenizer's codes."""
        return self.motion_input in ("codes", "both")

    @property
    def reads_features(self) -> bool:
        """Whether the motion prefix holds soft tokens from the motion encoder."""
        return self.motion_input in ("continuous", "both")

    @property
    def motion_token_ids(self) -> range:
        """The ids of motion codes 0 .. codebook_size - 1."""
        return range(self.motion_token_offset, self.motion_token_offset + self.codebook_size)
