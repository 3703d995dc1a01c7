"""The embedded default language model, `--base-model tiny`: a small Llama trained from scratch on the QA corpus.

No pretrained weights can be downloaded where biomechgpt is built, so the default base model is a Llama-style
config of a few million parameters plus a byte-level BPE tokenizer trained with `tokenizers` on the corpus text. It
goes through exactly the same code as a Hub model (vocabulary extension, processor, training, saving); only its
weights start random. Three sizes serve the size experiment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["TinySize", "TINY_SIZES", "is_tiny", "train_bpe_tokenizer", "build_tiny_model"]


@dataclass(frozen=True)
class TinySize:
    """Shape of one embedded model size (Llama family: RMSNorm, SwiGLU, rotary positions, tied embeddings)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int


# Sized for 2 CPU cores: "tiny" (~4 M parameters with a 2k text vocabulary) trains on the default corpus in minutes.
TINY_SIZES: dict[str, TinySize] = {
    "tiny-s": TinySize(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=384),
    "tiny": TinySize(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=704),
    "tiny-l": TinySize(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1024),
}
MAX_POSITIONS = 2048


def is_tiny(base_model: str) -> bool:
    """Whether `base_model` names an embedded size rather than a Hub id or folder."""
    return str(base_model) in TINY_SIZES


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 2048, *, chat_template: bool = True):
    """A byte-level BPE tokenizer trained on `texts` (digits split one by one, so numbers generalise).

    Args:
        texts (`Iterable[str]`): training text (the corpus questions and answers).
        vocab_size (`int`, *optional*, defaults to 2048): target vocabulary size, special tokens included.
        chat_template (`bool`, *optional*, defaults to `True`): give it the default chat template and its role
            markers; `False` gives a bare tokenizer like a base model's.

    Returns:
        `PreTrainedTokenizerFast` with `</s>` (end of sequence) and `<pad>`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from biomechgpt.processing.processing_biomechgpt import CHAT_SPECIAL_TOKENS, DEFAULT_CHAT_TEMPLATE

    specials = ["<pad>", "</s>", *(CHAT_SPECIAL_TOKENS if chat_template else ())]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>")
    if chat_template:
        fast.chat_template = DEFAULT_CHAT_TEMPLATE
    return fast


def build_tiny_model(size: str, vocab_size: int, *, seed: int = 0):
    """A randomly initialised `LlamaForCausalLM` of an embedded size for a text vocabulary of `vocab_size`.

    Args:
        size (`str`): one of `TINY_SIZES` ("tiny-s", "tiny", "tiny-l").
        vocab_size (`int`): rows of the text embedding (the motion vocabulary is added later).
        seed (`int`, *optional*, defaults to 0): seed of the initial weights.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if size not in TINY_SIZES:
        raise ValueError(f"unknown embedded model size {size!r}; choose one of {sorted(TINY_SIZES)}")
    shape = TINY_SIZES[size]
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_attention_heads,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=1,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)
