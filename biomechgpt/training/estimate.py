"""An up-front estimate of what a `biomechgpt train` configuration costs: time and peak memory, before the first step.

A pretrained base on a small machine can take days or exhaust the memory on its first (longest) batch; the user should
learn that in the first seconds, not after an hour. The estimate is arithmetic on the model's shape and the corpus's
token counts, priced with a matrix-multiply rate measured here in a fraction of a second. It covers the language-model
stages (the captions of stage 2a and the QA conversations); stage 1, the small motion encoder alone, takes minutes.

- **time**: floating-point operations per token (6 x parameters for full training; 4 x for LoRA / QLoRA, whose frozen
  weights need input gradients but no weight gradients; + 2 x with gradient checkpointing; + the attention over the
  sequence), times the tokens of every step, divided by `EFFICIENCY` of the measured matmul rate (`QLORA_SLOWDOWN`
  more for 4-bit weights, which are dequantised on the fly);
- **memory**: the weights as loaded, gradients and two Adam moments of the trainable weights, the activations the
  backward pass keeps for the longest batch (`ACTIVATION_FLOATS` per token and layer; one layer's worth plus the
  layer inputs with gradient checkpointing), the logits over the vocabulary (three float32 copies: logits,
  log-softmax and its gradient), `OVERHEAD` for the allocator and the rest, and `RUNTIME_BYTES` for the libraries.

Calibrated on the project's 2-core machines (see FACTS.md): SmolLM2-135M LoRA at batch 8 x ~600 tokens peaked at
15.6 GB (this model: 15.7 GB), and at batch 2 x 256 tokens 2.42 GB (2.64 GB); a training step achieves 75-79% of the
measured matmul rate for `tiny` and SmolLM2-135M LoRA on short batches (bench/bench_base_model.py), ~5% for SmolLM2
LoRA at batch 8 x ~600 tokens on two busy cores (issue 15). An order of magnitude, not a promise.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["TrainingEstimate", "estimate_training", "measure_matmul_rate", "available_memory_bytes",
           "LONG_RUN_SECONDS", "MEMORY_SHARE"]

EFFICIENCY = 0.35  # share of the measured matmul rate a training step achieves (see the module docstring)
QLORA_SLOWDOWN = 1.3  # 4-bit weights are dequantised at every matmul (~14 against ~18 tokens/s measured for 135M)
ACTIVATION_FLOATS = (12, 6)  # floats kept per token and layer: 12 x hidden + 6 x intermediate (Llama-style block)
OVERHEAD = 1.2
RUNTIME_BYTES = 512 * 1024 ** 2  # torch, transformers and peft themselves in memory (~0.4-0.5 GB RSS measured)
LONG_RUN_SECONDS = 3600.0  # warn when a run will take longer
MEMORY_SHARE = 0.9  # warn when the peak needs more than this share of the memory the machine has for it
_GIB = 1024 ** 3


@dataclass
class TrainingEstimate:
    """What `estimate_training` expects one training stage to cost.

    Args:
        parameters (`int`): weights of the model. trainable_parameters (`int`): those the optimizer updates.
        steps (`int`): optimizer steps. tokens (`int`): tokens processed over all steps (padding included).
        batch_size (`int`): sequences per forward pass. longest_sequence (`int`): tokens of the longest one.
        flops_per_token (`float`): training FLOPs per token.
        matmul_flops (`float`): matrix-multiply rate measured here (FLOP/s). device (`str`): "cpu" or "cuda".
        tokens_per_second (`float`), seconds (`float`): the expected speed and duration.
        peak_memory_bytes (`int`): the expected peak at the longest batch.
        memory_budget_bytes (`int`, *optional*): what the machine has for it (GPU memory, or the RAM this process
            holds plus the RAM available); `None` when unknown.
        assumptions (`str`): how the numbers were made, in words.
    """

    parameters: int
    trainable_parameters: int
    steps: int
    tokens: int
    batch_size: int
    longest_sequence: int
    flops_per_token: float
    matmul_flops: float
    device: str
    tokens_per_second: float
    seconds: float
    peak_memory_bytes: int
    memory_budget_bytes: int | None
    assumptions: str

    def describe(self) -> str:
        """One line: steps, tokens, time, speed and memory."""
        budget = f" of {self.memory_budget_bytes / _GIB:.1f} GiB" if self.memory_budget_bytes else ""
        tokens = f"{self.tokens / 1e6:.1f} M" if self.tokens >= 1e6 else f"{self.tokens:,}"
        return (f"estimate: {self.steps:,} steps, {tokens} tokens, about {_duration(self.seconds)} "
                f"at ~{self.tokens_per_second:,.0f} tokens/s, peak memory ~{self.peak_memory_bytes / _GIB:.1f} GiB"
                f"{budget} ({self.assumptions})")

    def warnings(self) -> list[str]:
        """One line per problem: a run of hours, or a peak above `MEMORY_SHARE` of the memory there is."""
        out = []
        if self.memory_budget_bytes and self.peak_memory_bytes > MEMORY_SHARE * self.memory_budget_bytes:
            out.append(f"this configuration needs about {self.peak_memory_bytes / _GIB:.1f} GiB at its longest batch "
                       f"({self.batch_size} x {self.longest_sequence} tokens), more than the "
                       f"{self.memory_budget_bytes / _GIB:.1f} GiB this machine has for it: lower --batch-size or "
                       "--max-motion-codes, add --gradient-checkpointing, or train with --qlora or on a GPU")
        if self.seconds > LONG_RUN_SECONDS:
            out.append(f"this configuration will take about {_duration(self.seconds)} ({self.steps:,} steps at "
                       f"~{self.tokens_per_second:,.0f} tokens/s on {self.device}): bound it with --max-steps, or use "
                       "a smaller --base-model or a GPU")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def then(self, other: TrainingEstimate) -> TrainingEstimate:
        """Two stages run one after the other (stage 2a captions, then the QA conversations): times, steps and
        tokens add up; the peak is the larger one."""
        seconds = self.seconds + other.seconds
        tokens = self.tokens + other.tokens
        first = self if self.peak_memory_bytes >= other.peak_memory_bytes else other
        return TrainingEstimate(**{**other.to_dict(), "steps": self.steps + other.steps, "tokens": tokens,
                                   "seconds": seconds, "tokens_per_second": tokens / seconds if seconds else 0.0,
                                   "batch_size": first.batch_size, "longest_sequence": first.longest_sequence,
                                   "peak_memory_bytes": first.peak_memory_bytes})


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def measure_matmul_rate(device: str = "cpu", dtype: Any = None, *, size: int = 1024, budget_s: float = 0.25) -> float:
    """FLOP/s of square matrix multiplies on `device` in `dtype` (float32 by default), over about `budget_s`."""
    import torch

    dtype = dtype or torch.float32
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.matmul(a, b)  # warm up
    sync()
    runs, start = 0, time.perf_counter()
    while True:
        torch.matmul(a, b)
        runs += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s or runs >= 1000:
            return 2.0 * size ** 3 * runs / elapsed


def available_memory_bytes(device: str = "cpu") -> int | None:
    """What a training process here can use: the GPU's memory, or this process's RAM plus the RAM available."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    try:
        import psutil

        return int(psutil.Process().memory_info().rss + psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        fields = dict(line.split(":", 1) for line in open("/proc/meminfo").read().splitlines() if ":" in line)
        available = int(fields["MemAvailable"].split()[0]) * 1024
        rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return available + rss
    except (OSError, KeyError, ValueError):
        return None


def _shape(config: Any) -> tuple[int, int, int, int]:
    """(hidden, layers, intermediate, vocabulary) of a causal LM config (nested text configs too)."""
    config = getattr(config, "text_config", None) or config
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0) or 0)
    layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0) or 0)
    intermediate = int(getattr(config, "intermediate_size", 0) or 4 * hidden)
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    return hidden, layers, intermediate, vocab


def estimate_training(
    model: Any,
    lengths: list[int],
    *,
    mode: str,
    batch_size: int,
    gradient_accumulation_steps: int = 1,
    epochs: float = 1.0,
    max_steps: int = -1,
    gradient_checkpointing: bool = False,
    bf16: bool = False,
    world_size: int = 1,
    device: str | None = None,
    matmul_flops: float | None = None,
    memory_budget_bytes: int | None = -1,
    completed_steps: int = 0,
) -> TrainingEstimate:
    """Expected time and peak memory of training `model` on sequences of `lengths` tokens (see the module docstring).

    Args:
        model (`PreTrainedModel`): the model as it will train (a PEFT model counts its trainable weights); its
            `config` (or `config.text_config`) gives the shape.
        lengths (`list[int]`): tokens of each training sequence.
        mode (`str`): "full", "lora" or "qlora".
        batch_size, gradient_accumulation_steps, epochs, max_steps, gradient_checkpointing, bf16, world_size: as in
            `BiomechGPTTrainingArguments` (`world_size`: processes training in parallel).
        device (`str`, *optional*): defaults to "cuda" when a GPU is there, else "cpu".
        matmul_flops (`float`, *optional*): the matmul rate to assume; measured here when omitted.
        memory_budget_bytes (`int`, *optional*): the memory there is; measured here when -1, unknown when `None`.
        completed_steps (`int`, *optional*, defaults to 0): steps a checkpoint being resumed already did; only the
            rest is counted.

    Returns:
        [`TrainingEstimate`].
    """
    import torch

    if not lengths:
        raise ValueError("no training sequences to estimate")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    language_model = getattr(model, "get_base_model", lambda: model)()
    config = getattr(language_model, "config", None)
    hidden, layers, intermediate, vocab = _shape(getattr(config, "text_config", None) or config)
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if mode == "qlora":  # 4-bit weights are stored packed: count them by the layers' shapes
        parameters = max(parameters, _unpacked_parameters(model))

    per_step = batch_size * gradient_accumulation_steps * max(1, world_size)
    steps = max_steps if max_steps > 0 else max(1, math.ceil(math.ceil(len(lengths) / per_step) * epochs))
    steps = max(0, steps - completed_steps)
    mean_length = sum(lengths) / len(lengths)
    tokens = int(steps * per_step * mean_length)
    longest = max(lengths)

    weight_factor = 6.0 if mode == "full" else 4.0
    if gradient_checkpointing:
        weight_factor += 2.0  # the forward pass runs again in the backward pass
    flops_per_token = weight_factor * parameters + 6.0 * layers * mean_length * hidden
    measured = matmul_flops is None
    if measured:
        matmul_flops = measure_matmul_rate(device, torch.bfloat16 if bf16 else torch.float32)
    speed = EFFICIENCY * matmul_flops / flops_per_token / (QLORA_SLOWDOWN if mode == "qlora" else 1.0)
    speed *= max(1, world_size)
    seconds = tokens / speed

    weight_bytes = 4 * parameters
    if mode == "qlora":  # linear weights in 4 bits (+ quantisation constants); embeddings stay as loaded
        embeddings = vocab * hidden * (1 if getattr(config, "tie_word_embeddings", False) else 2)
        weight_bytes = int(0.55 * max(0, parameters - embeddings) + 4 * embeddings)
    state_bytes = 12 * trainable  # gradient and two Adam moments, float32
    act_bytes = 2 if bf16 else 4
    batch_tokens = batch_size * longest
    per_layer = (ACTIVATION_FLOATS[0] * hidden + ACTIVATION_FLOATS[1] * intermediate) * act_bytes
    if gradient_checkpointing:
        activations = batch_tokens * (layers * hidden * act_bytes + per_layer)
    else:
        activations = batch_tokens * layers * per_layer
    logits = batch_tokens * vocab * 4 * 3
    peak = int(OVERHEAD * (weight_bytes + state_bytes + activations + logits) + RUNTIME_BYTES)
    if memory_budget_bytes == -1:
        memory_budget_bytes = available_memory_bytes(device)

    assumptions = (f"{EFFICIENCY:.0%} of the {matmul_flops / 1e9:,.0f} GFLOP/s "
                   f"{'bf16' if bf16 else 'fp32'} matmul rate {'measured' if measured else 'given'} on {device}"
                   f"{', 4-bit weights ' + str(QLORA_SLOWDOWN) + 'x slower' if mode == 'qlora' else ''}, "
                   + (f"{flops_per_token / 1e9:,.3g} GFLOP per token" if flops_per_token >= 1e9
                      else f"{flops_per_token / 1e6:,.3g} MFLOP per token"))
    return TrainingEstimate(
        parameters=int(parameters), trainable_parameters=int(trainable), steps=int(steps), tokens=tokens,
        batch_size=batch_size, longest_sequence=int(longest), flops_per_token=float(flops_per_token),
        matmul_flops=float(matmul_flops), device=device, tokens_per_second=float(speed), seconds=float(seconds),
        peak_memory_bytes=peak, memory_budget_bytes=memory_budget_bytes, assumptions=assumptions)


def _unpacked_parameters(model: Any) -> int:
    """Parameters counted by the layers' logical shapes (a bitsandbytes 4-bit weight stores two values per byte)."""
    total = 0
    for module in model.modules():
        for param in module.parameters(recurse=False):
            shape = getattr(param, "quant_state", None)
            shape = getattr(shape, "shape", None)
            total += int(math.prod(shape)) if shape is not None else param.numel()
    return total
