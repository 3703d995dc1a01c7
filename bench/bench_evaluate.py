"""Benchmark of the evaluation stage: metric arithmetic, gait-feature extraction, baseline training, and (given a
`biomechgpt run` folder) the whole `evaluate_model` with its per-part wall times and headline numbers.

    python bench/bench_evaluate.py                       # synthetic motions only
    python bench/bench_evaluate.py --run runs/default    # + the baseline and evaluation on a real run folder
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from biomechgpt.evaluation.baseline import BaselineSettings, NonLLMBaseline, gait_features
from biomechgpt.metrics import compute_task_metrics
from biomechgpt.processing.motion import CANONICAL_COORDINATES, CANONICAL_FRAME_RATE, Motion


def _synthetic(n: int, seconds: float, rng: np.random.Generator) -> list[Motion]:
    t = np.arange(int(seconds * CANONICAL_FRAME_RATE)) / CANONICAL_FRAME_RATE
    out = []
    for _ in range(n):
        v = rng.normal(0, 0.02, (t.size, len(CANONICAL_COORDINATES)))
        v += np.sin(2 * np.pi * rng.uniform(0.7, 1.5) * t)[:, None] * rng.uniform(0.1, 0.5, len(CANONICAL_COORDINATES))
        out.append(Motion(list(CANONICAL_COORDINATES), v, CANONICAL_FRAME_RATE))
    return out


def bench_metrics(rng: np.random.Generator) -> None:
    n = 20_000
    labels = np.array(["walking", "running", "squat", "jump", "stairs"])
    refs = list(rng.choice(labels, n))
    preds = [r if rng.random() < 0.9 else (None if rng.random() < 0.3 else str(rng.choice(labels))) for r in refs]
    start = time.perf_counter()
    m = compute_task_metrics("activity", preds, refs, list(rng.uniform(0.2, 1.0, n)))
    clf_s = time.perf_counter() - start
    truth = rng.normal(110, 10, n)
    start = time.perf_counter()
    r = compute_task_metrics("cadence", list(truth + rng.normal(0, 3, n)), list(truth))
    reg_s = time.perf_counter() - start
    print(f"metrics: {n} closed-set answers in {clf_s * 1e3:.1f} ms (accuracy {m['accuracy']:.3f}); "
          f"{n} numeric answers in {reg_s * 1e3:.1f} ms (r {r['pearson_r']:.3f})")


def bench_features(motions: list[Motion], label: str) -> None:
    start = time.perf_counter()
    for motion in motions:
        gait_features(motion)
    seconds = time.perf_counter() - start
    frames = sum(m.n_frames for m in motions)
    print(f"gait features ({label}): {len(motions)} trials, {frames / CANONICAL_FRAME_RATE / 3600:.2f} h of motion "
          f"in {seconds:.2f} s ({len(motions) / seconds:.0f} trials/s)")


def bench_run(run: Path, quick: bool) -> None:
    from biomechgpt.cohort import load_cohort
    from biomechgpt.evaluation import evaluate_model

    cohort = load_cohort(run / "cohort")
    motions = [m for _, m in cohort.iter_motions()]
    bench_features(motions, f"cohort {run.name}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        metrics = evaluate_model(run / "model", run / "dataset", tmp, cohort_dir=run / "cohort", quick=quick,
                                 progress=False, write_card=False)
        total = time.perf_counter() - start
    print(f"evaluate_model: {total:.1f} s total; parts {json.dumps(metrics['info']['timings_s'])}")
    print(f"{'task':<18}{'n':>6}  {'metric':<10}{'BiomechGPT':>11}{'baseline':>10}  family  fit s")
    for task, entry in metrics["tasks"].items():
        metric = next((k for k in ("macro_f1", "pearson_r", "token_f1") if k in entry["biomechgpt"]), None)
        base = entry.get("baseline", {})
        ours = entry["biomechgpt"].get(metric)
        fit = entry.get("baseline_selection", {}).get("fit_s", "")
        print(f"{task:<18}{entry['n']:>6}  {metric:<10}{_f(ours):>11}{_f(base.get(metric)):>10}  "
              f"{base.get('family', '-'):<6}  {fit}")


def _f(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a `biomechgpt run` folder (cohort/, dataset/, model/)")
    parser.add_argument("--quick", action="store_true", help="quick baseline budgets for the run folder")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    bench_metrics(rng)
    motions = _synthetic(300, 10.0, rng)
    bench_features(motions, "synthetic 10 s")
    ids = [f"t{i}" for i in range(len(motions))]
    lookup = dict(zip(ids, motions))
    targets = {"activity": (ids, [str(i % 5) for i in range(len(ids))]),
               "cadence": (ids, list(rng.normal(110, 10, len(ids))))}
    start = time.perf_counter()
    baseline = NonLLMBaseline(BaselineSettings()).fit(targets, lookup.__getitem__)
    print(f"baseline fit, 2 tasks x 300 trials (default settings): {time.perf_counter() - start:.2f} s "
          f"({json.dumps({t: s['fit_s'] for t, s in baseline.summary().items()})})")
    if args.run is not None:
        if not (args.run / "model").is_dir():
            print(f"{args.run}: not a run folder (no model/)", file=sys.stderr)
            return 2
        bench_run(args.run, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
