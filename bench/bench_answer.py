"""Answering speed of BiomechGPT on CPU: one closed-set answer (latency) and closed-set answers per second in batch.

Latency is measured three ways: a question about a new motion (its prefix is run), a further question about the same
motion asked with a plain `model.answer(motion, ...)` call (the model remembers the last motion's prefix), and one
asked with an explicit `MotionPrefix` from `model.encode_prefix` (as the chat page does, one per session).

Usage:
    python bench/bench_answer.py --model runs/default/model [--threads 2]
    python bench/bench_answer.py            # an untrained model of the default `tiny` size, real task candidates

Without `--model` the benchmark builds the default-size model (random weights: speed does not depend on them) with
the QA corpus's real answer candidates and questions, so its numbers hold for a trained default model. Targets on 2
cores: one closed-set answer under 100 ms, at least 200 closed-set answers per second in batch.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

CLOSED_TASKS = ("activity", "impairment", "impairment_side", "diagnosis", "assistive_device", "fall_history")


def _default_model(codebook_size: int = 512, seed: int = 0):
    """The `tiny` default, untrained, with one candidate sentence per label rendered by the corpus templates."""
    from biomechgpt.dataset_builder.tasks import TASKS
    from biomechgpt.dataset_builder.templates import QUESTIONS, render_answer
    from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTForCausalLM
    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor
    from biomechgpt.training.tiny_lm import build_tiny_model, train_bpe_tokenizer

    candidates = {}
    for task in CLOSED_TASKS:
        # the shortest wording of each label, as `corpus_task_metadata` picks from a real corpus
        candidates[task] = {}
        for label in TASKS[task].labels:
            texts = []
            for template in range(8):
                try:
                    texts.append(render_answer(task, label=label, template=template))
                except IndexError:
                    break
            candidates[task][label] = min(texts, key=len)
    questions = {t: [q.text for q in QUESTIONS[t]] for t in CLOSED_TASKS}
    texts = [q for qs in questions.values() for q in qs] + [a for c in candidates.values() for a in c.values()]
    tokenizer = train_bpe_tokenizer(texts * 20, vocab_size=2048)
    model = BiomechGPTForCausalLM.from_language_model(build_tiny_model("tiny", len(tokenizer), seed=seed), tokenizer,
                                                      codebook_size=codebook_size, seed=seed)
    processor = BiomechGPTProcessor(tokenizer, motion_token_offset=model.config.motion_token_offset,
                                    codebook_size=codebook_size, task_kinds={t: "closed" for t in CLOSED_TASKS},
                                    answer_candidates=candidates, task_questions=questions)
    model.processor = processor
    return model.eval(), questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: untrained default-size model)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--motions", type=int, default=64, help="motions in the batch benchmark (default: 64)")
    parser.add_argument("--codes", type=int, default=150,
                        help="motion codes per motion (default: 150, 20 s; 4 frames each for a frame-reading model)")
    parser.add_argument("--repeats", type=int, default=20, help="single-answer repeats (default: 20)")
    parser.add_argument("--batch-size", type=int, default=64, help="questions per forward pass (default: 64)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import biomechgpt  # noqa: F401

    if args.model:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(args.model).eval()
        processor = model.processor
        tasks = [t for t in CLOSED_TASKS if processor.task_kinds.get(t) == "closed"]
        questions = {t: processor.task_questions[t] for t in tasks}
    else:
        model, questions = _default_model()
        processor = model.processor
    tasks = list(questions)
    rng = np.random.default_rng(0)
    size = processor.codebook_size
    if getattr(model.config, "motion_input", "codes") != "codes":  # a model that reads the frames themselves
        motions = [rng.normal(scale=0.2, size=(4 * args.codes, 33)).astype("float32") for _ in range(args.motions)]
    else:
        motions = [rng.integers(0, size, args.codes).tolist() for _ in range(args.motions)]

    def timed(motion, task: str, question: str) -> float:
        start = time.perf_counter()
        model.answer(motion, question, task=task)
        return time.perf_counter() - start

    cold, remembered, explicit = [], [], []
    for k in range(args.repeats + 2):
        motion = motions[k % len(motions)]
        first, second = tasks[k % len(tasks)], tasks[(k + 1) % len(tasks)]
        model.clear_answer_cache()
        # a new motion: its prefix is run
        cold.append(timed(motion, first, questions[first][0]))
        # a second question about it: the remembered prefix, only the question/candidate tree runs
        remembered.append(timed(motion, second, questions[second][0]))
        prefix = model.encode_prefix(motion)
        explicit.append(timed(prefix, first, questions[first][-1]))
    cold, remembered, explicit = cold[2:], remembered[2:], explicit[2:]  # warm-up

    def ms(values: list[float], q: float = 0.5) -> float:
        return 1000 * sorted(values)[round(q * (len(values) - 1))]

    # batch: every closed-set task asked about every motion
    batch_motions = [m for m in motions for _ in tasks]
    batch_questions = [questions[t][i % len(questions[t])] for i, _ in enumerate(motions) for t in tasks]
    batch_tasks = [t for _ in motions for t in tasks]
    model.answer_batch(batch_motions[:12], batch_questions[:12], tasks=batch_tasks[:12], batch_size=args.batch_size)
    start = time.perf_counter()
    answers = model.answer_batch(batch_motions, batch_questions, tasks=batch_tasks, batch_size=args.batch_size)
    elapsed = time.perf_counter() - start
    # the same batch with every motion's prefix encoded beforehand (chat sessions, repeated evaluation)
    prefixes = {id(m): model.encode_prefix(m) for m in motions}
    start = time.perf_counter()
    model.answer_batch([prefixes[id(m)] for m in batch_motions], batch_questions, tasks=batch_tasks,
                       batch_size=args.batch_size)
    elapsed_cached = time.perf_counter() - start
    candidates = {t: len(processor.answer_candidates[t]) for t in tasks}
    result = {
        "model": args.model or "tiny (untrained, default size)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": args.threads,
        "motion_codes": args.codes,
        "candidates_per_task": candidates,
        "single_answer_new_motion_ms_median": ms(cold),
        "single_answer_same_motion_ms_median": ms(remembered),
        "single_answer_same_motion_ms_p90": ms(remembered, 0.9),
        "single_answer_motion_prefix_ms_median": ms(explicit),
        "single_answer_motion_prefix_ms_p90": ms(explicit, 0.9),
        "batch_answers": len(answers),
        "batch_answers_per_s": len(answers) / elapsed,
        "batch_answers_per_s_prefixes_encoded": len(answers) / elapsed_cached,
        "targets": {"single_answer_ms": 100, "batch_answers_per_s": 200},
    }
    print(json.dumps(result, indent=2))
    print(f"one closed-set answer: {result['single_answer_same_motion_ms_median']:.1f} ms (median, a further question "
          f"about the same motion; {result['single_answer_new_motion_ms_median']:.1f} ms about a new motion), "
          f"batch: {result['batch_answers_per_s']:.0f} closed-set answers/s on {args.threads} threads")


if __name__ == "__main__":
    main()
