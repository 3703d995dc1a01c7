"""The up-front estimate of a training run's time and peak memory: calibrated against the figures measured on this
machine kind (FACTS.md), warning lines when a configuration will take hours or more memory than there is, one quiet
line otherwise, and no noise from optional kernels or deprecated attributes in a LoRA run."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import biomechgpt  # noqa: F401  (registers the Auto classes)
from biomechgpt.cli import main
from biomechgpt.training import estimate as estimate_module
from biomechgpt.training.estimate import estimate_training
from test_train_helpers import make_corpus, make_hub_llama, make_motion_tokenizer

GIB = 1024 ** 3
CPU_FP32 = 223e9  # FACTS.md: torch matmul on 2 threads


def _smollm2_shaped(trainable: bool = False):
    """A SmolLM2-135M-shaped Llama on the meta device (no memory): hidden 576, 30 layers, tied 49k vocabulary plus
    the 18 motion rows of a 16-code tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=49152 + 18, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    return model.requires_grad_(trainable)  # LoRA: the base frozen (its adapters are a rounding error here)


def test_estimate_matches_the_peak_measured_for_smollm2_lora():
    model = _smollm2_shaped()
    est = estimate_training(model, [600] * 64, mode="lora", batch_size=8, epochs=1, matmul_flops=CPU_FP32,
                            memory_budget_bytes=24 * GIB)
    assert 134e6 < est.parameters < 136e6 and est.trainable_parameters == 0
    assert 12 * GIB < est.peak_memory_bytes < 19 * GIB  # measured: 15.6 GB at batch 8 x ~600 tokens (issue 15)
    assert est.steps == 8 and est.tokens == 64 * 600
    assert est.warnings() == []  # fits 24 GiB, takes minutes
    # checkpointing keeps one layer's activations: well under half the peak
    lean = estimate_training(model, [600] * 64, mode="lora", batch_size=8, epochs=1, matmul_flops=CPU_FP32,
                             memory_budget_bytes=24 * GIB, gradient_checkpointing=True)
    assert lean.peak_memory_bytes < 0.5 * est.peak_memory_bytes and lean.seconds > est.seconds


def test_estimate_warns_about_memory_the_machine_does_not_have():
    est = estimate_training(_smollm2_shaped(), [600] * 64, mode="lora", batch_size=8, matmul_flops=CPU_FP32,
                            memory_budget_bytes=8 * GIB)
    (line,) = est.warnings()
    assert "GiB at its longest batch (8 x 600 tokens), more than the 8.0 GiB" in line
    assert "--batch-size" in line and "--gradient-checkpointing" in line and "\n" not in line


def test_estimate_warns_about_a_run_of_hours_and_says_what_it_assumes():
    # the default corpus (~2 M tokens per epoch, 2 epochs) on a 135M base on 2 CPU cores: many hours
    est = estimate_training(_smollm2_shaped(), [560] * 3600, mode="lora", batch_size=8, epochs=2,
                            matmul_flops=CPU_FP32, memory_budget_bytes=24 * GIB)
    assert est.seconds > 5 * 3600
    (line,) = est.warnings()
    assert line.startswith("this configuration will take about ") and " h (900 steps" in line
    assert "--max-steps" in line
    described = est.describe()
    assert described.startswith("estimate: 900 steps, 4.0 M tokens, about ")
    assert "35% of the 223 GFLOP/s fp32 matmul rate given on cpu" in described
    # full fine-tuning costs more per token than LoRA (weight gradients) and holds the Adam state of every weight
    full = estimate_training(_smollm2_shaped(trainable=True), [560] * 3600, mode="full", batch_size=8, epochs=2,
                             matmul_flops=CPU_FP32, memory_budget_bytes=24 * GIB)
    assert full.seconds > 1.4 * est.seconds and full.peak_memory_bytes > est.peak_memory_bytes + 12 * 134e6


def test_estimate_rejects_an_empty_corpus():
    with pytest.raises(ValueError, match="no training sequences"):
        estimate_training(_smollm2_shaped(), [], mode="lora", batch_size=8, matmul_flops=CPU_FP32)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    make_motion_tokenizer().save_pretrained(root / "tokenizer")
    return make_corpus(root / "corpus"), root / "tokenizer", make_hub_llama(root / "hub_llama")


def _train(inputs, out, *extra):
    corpus, tokenizer, _ = inputs
    return main(["train", "--dataset", str(corpus), "--tokenizer", str(tokenizer), "--out", str(out),
                 "--max-steps", "1", "--motion-input", "codes", *extra])


def test_train_prints_one_estimate_line_and_no_warning_for_a_small_run(inputs, tmp_path, capsys):
    assert _train(inputs, tmp_path / "model", "--base-model", "tiny-s") == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("estimate: ")]
    assert len(lines) == 1 and "1 steps" in lines[0] and "GFLOP/s" in lines[0]
    assert "warning:" not in err
    summary = json.loads((tmp_path / "model" / "training_summary.json").read_text())
    assert summary["estimate"]["steps"] == 1 and summary["estimate"]["peak_memory_bytes"] > 0


def test_train_warns_before_the_first_step_even_without_progress(inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(estimate_module, "EFFICIENCY", 1e-9)  # as slow as a 4B base on a laptop
    assert _train(inputs, tmp_path / "model", "--base-model", "tiny-s", "--no-progress") == 0
    err = capsys.readouterr().err
    assert "estimate: " not in err  # the estimate itself comes with the progress bar
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "this configuration will take about" in warnings[0]


@pytest.mark.parametrize("mode", ["--lora", "--qlora"])
def test_lora_training_is_quiet_about_deprecations_and_optional_kernels(inputs, tmp_path, capsys, recwarn, mode):
    _, _, hub_llama = inputs
    assert _train(inputs, tmp_path / "model", "--base-model", str(hub_llama), mode, "--no-progress") == 0
    messages = [str(w.message) for w in recwarn] + capsys.readouterr().err.splitlines()
    assert not [m for m in messages if "is_gradient_checkpointing" in m or "kernels" in m]
    # bitsandbytes' advice to install `kernels` (logged on AVX512-BF16 CPUs) never reaches a handler
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    bnb_logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    bnb_logger.addHandler(handler)
    try:
        bnb_logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you "
                           "already `pip install kernels` and the kernels >= 0.11.1", "offline")
        bnb_logger.warning("another bitsandbytes warning")
    finally:
        bnb_logger.removeHandler(handler)
    assert [r.getMessage() for r in seen] == ["another bitsandbytes warning"]
