"""Load test of `biomechgpt chat` on loopback: concurrent sessions, each selecting a trial and asking questions.

Usage:
    python bench/bench_chat_load.py --model runs/default/model --dataset runs/default/dataset
    python bench/bench_chat_load.py          # an untrained model of the default `tiny` size and a synthetic corpus

The server runs as its own process (`biomechgpt chat`), exactly as a user starts it; the clients are `gradio_client`
sessions in threads of this process, started together. Each session selects its own trial, then asks its questions
one after another. Reported: errors (exceptions, or a warning in the page's status line), the answer latency seen by
the client (median, 95th percentile, max) and the answers per second over the whole run. Exit status 1 on any error.

Without `--model`, the model has the default `tiny` architecture with random weights (speed does not depend on the
weights) and closed-set tasks only: an untrained model would generate to the token limit on numeric questions, which
measures nothing a trained model does.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CLOSED_TASKS = ("activity", "impairment", "impairment_side", "diagnosis", "assistive_device", "fall_history")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_default(folder: Path, n_trials: int, codes_per_trial: int, seed: int = 0) -> tuple[Path, Path, list[str]]:
    """An untrained default-size model folder, a QA corpus folder and the questions to ask."""
    import pandas as pd

    from biomechgpt.dataset_builder.tasks import TASKS
    from biomechgpt.dataset_builder.templates import QUESTIONS
    from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTForCausalLM
    from biomechgpt.processing.configuration_motion_tokenizer import MotionTokenizerConfig
    from biomechgpt.processing.modeling_motion_tokenizer import MotionTokenizerModel
    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor
    from biomechgpt.processing.tokenization_motion import MotionTokenizer
    from biomechgpt.training.tiny_lm import build_tiny_model, train_bpe_tokenizer

    import torch

    torch.manual_seed(seed)
    motion_tokenizer = MotionTokenizer(MotionTokenizerModel(MotionTokenizerConfig()))
    codebook = motion_tokenizer.codebook_size
    questions = {t: [q.text for q in QUESTIONS[t]] for t in CLOSED_TASKS}
    candidates = {t: {label: f"The answer is {label.replace('_', ' ')}." for label in TASKS[t].labels}
                  for t in CLOSED_TASKS}
    texts = [q for qs in questions.values() for q in qs] + [a for c in candidates.values() for a in c.values()]
    tokenizer = train_bpe_tokenizer(texts * 20, vocab_size=2048)
    model = BiomechGPTForCausalLM.from_language_model(build_tiny_model("tiny", len(tokenizer), seed=seed), tokenizer,
                                                      codebook_size=codebook, seed=seed)
    processor = BiomechGPTProcessor(tokenizer, motion_tokenizer, motion_token_offset=model.config.motion_token_offset,
                                    codebook_size=codebook, task_kinds={t: "closed" for t in CLOSED_TASKS},
                                    answer_candidates=candidates, task_questions=questions)
    model_dir = folder / "model"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)

    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_trials):
        codes = rng.integers(0, codebook, size=codes_per_trial).tolist()
        for task in CLOSED_TASKS:
            label = TASKS[task].labels[int(rng.integers(len(TASKS[task].labels)))]
            rows.append({"id": f"t{t:03d}-{task}", "participant_id": f"p{t:03d}", "trial_id": f"t{t:03d}",
                         "split": "train", "task": task, "question": questions[task][0],
                         "answer": candidates[task][label], "target_label": label, "target_value": None,
                         "target_unit": None, "motion_codes": codes})
    dataset_dir = folder / "dataset"
    (dataset_dir / "data").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(dataset_dir / "data" / "train-00000.parquet")
    asked = [q for qs in questions.values() for q in qs[:2]]
    return model_dir, dataset_dir, asked


def run_session(url: str, trial_id: str, questions: list[str], barrier: threading.Barrier,
                latencies: list[float], errors: list[str], lock: threading.Lock) -> None:
    from gradio_client import Client

    try:
        client = Client(url, verbose=False)
        barrier.wait()
        status = client.predict(trial_id, False, api_name="/select_trial")[0]
        if status.startswith("⚠️"):
            raise RuntimeError(status)
        for question in questions:
            start = time.perf_counter()
            chat, _, status = client.predict(question, api_name="/ask")
            elapsed = time.perf_counter() - start
            if status.startswith("⚠️") or chat[-1]["role"] != "assistant":
                raise RuntimeError(status)
            with lock:
                latencies.append(elapsed)
    except Exception as err:  # every failure is counted, none stops the other sessions
        with lock:
            errors.append(f"{trial_id}: {type(err).__name__}: {err}")
        if not barrier.broken:
            barrier.abort()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: untrained default-size model)")
    parser.add_argument("--dataset", default=None, help="QA corpus folder with the trials (needed with --model)")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions (default: 20)")
    parser.add_argument("--questions", type=int, default=10, help="questions per session (default: 10)")
    parser.add_argument("--codes", type=int, default=75, help="motion codes per synthetic trial (default: 75 = 10 s)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    if (args.model is None) != (args.dataset is None):
        parser.error("give --model and --dataset together, or neither")

    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        if args.model is None:
            model_dir, dataset_dir, pool = build_default(Path(tmp), n_trials=args.sessions, codes_per_trial=args.codes)
        else:
            from biomechgpt.chat.app import suggested_questions
            from biomechgpt.chat.catalog import TrialCatalog

            model_dir, dataset_dir = Path(args.model), Path(args.dataset)
            pool = suggested_questions(TrialCatalog.load(dataset_dir=dataset_dir))
        from biomechgpt.chat.catalog import TrialCatalog

        trials = list(TrialCatalog.load(dataset_dir=dataset_dir).table["trial_id"])
        port = _free_port()
        url = f"http://127.0.0.1:{port}/"
        server = subprocess.Popen([sys.executable, "-m", "biomechgpt.cli", "chat", "--model", str(model_dir),
                                   "--dataset", str(dataset_dir), "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            from gradio_client import Client

            started = time.perf_counter()
            while True:
                if server.poll() is not None:
                    print(f"server exited: {server.stderr.read()[-2000:]}", file=sys.stderr)
                    return 1
                try:
                    Client(url, verbose=False)
                    break
                except Exception:  # not listening yet
                    if time.perf_counter() - started > 120:
                        print("server did not come up in 120 s", file=sys.stderr)
                        return 1
                    time.sleep(0.5)
            startup = time.perf_counter() - started

            latencies: list[float] = []
            errors: list[str] = []
            lock = threading.Lock()
            barrier = threading.Barrier(args.sessions)
            threads = []
            for s in range(args.sessions):
                questions = [pool[(s + k) % len(pool)] for k in range(args.questions)]
                threads.append(threading.Thread(target=run_session, args=(
                    url, trials[s % len(trials)], questions, barrier, latencies, errors, lock)))
            wall = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - wall
        finally:
            server.terminate()
            server.wait(timeout=30)

    expected = args.sessions * args.questions
    result = {
        "sessions": args.sessions,
        "questions_per_session": args.questions,
        "answers": len(latencies),
        "errors": len(errors),
        "median_latency_s": statistics.median(latencies) if latencies else None,
        "p95_latency_s": float(np.percentile(latencies, 95)) if latencies else None,
        "max_latency_s": max(latencies) if latencies else None,
        "answers_per_s": len(latencies) / wall,
        "wall_s": wall,
        "server_startup_s": startup,
        "model": str(args.model or "untrained default `tiny` (closed-set tasks)"),
    }
    print(f"{args.sessions} sessions x {args.questions} questions on {url}: {len(latencies)}/{expected} answers, "
          f"{len(errors)} errors")
    if latencies:
        print(f"answer latency: median {result['median_latency_s']:.3f} s, p95 {result['p95_latency_s']:.3f} s, "
              f"max {result['max_latency_s']:.3f} s; {result['answers_per_s']:.1f} answers/s over {wall:.1f} s "
              f"(server start {startup:.1f} s)")
    for error in errors[:5]:
        print("error:", error)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if not errors and len(latencies) == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
