"""Benchmark a trained MotionTokenizer: reconstruction quality, codebook use and encoding speed.

    python bench/bench_motion_tokenizer.py --tokenizer runs/tok --cohort runs/cohort [--max-trials 600]

Scores encode -> decode on the cohort's held-out participants (test split) and, separately, on the real recordings
in ../shared/reference_motion/ and its subfolders (does the codebook cover real movement?), per angle group (pelvis
and legs, arms, lumbar) as well as overall; says which real files the tokenizer's out-of-distribution check flags;
then times a 30-second trial on 2 threads and a batch. Prints the numbers and writes them to
TOKENIZER/benchmark.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REFERENCE_MOTION_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference_motion"
SUMMARY_KEYS = (
    "n_trials", "joint_angle_mae_deg", "heading_mae_deg", "pelvis_height_mae_cm", "pelvis_velocity_mae_m_s",
    "pelvis_velocity_1s_mae_m_s",
    "codebook_perplexity", "codebook_usage", "codes_used", "joint_angle_mae_deg_per_group",
)  # fmt: skip


def held_out_quality(tokenizer, cohort_dir: Path, max_trials: int, seed: int) -> tuple[dict, list]:
    from biomechgpt.cohort import load_cohort
    from biomechgpt.training.motion_tokenizer import reconstruction_metrics

    cohort = load_cohort(cohort_dir)
    trials = cohort.trials
    test = trials[trials["split"] == "test"]
    rng = np.random.default_rng(seed)
    ids = sorted(test["trial_id"].tolist())
    ids = [ids[i] for i in sorted(rng.permutation(len(ids))[:max_trials])]
    motions = {tid: m for tid, m in cohort.iter_motions(ids)}
    result = reconstruction_metrics(tokenizer, [motions[t] for t in ids])
    result["participants"] = int(test[test["trial_id"].isin(ids)]["participant_id"].nunique())
    # per activity: where the codebook does worse
    per_activity = {}
    activity = dict(zip(test["trial_id"], test["activity"]))
    for name in sorted({activity[t] for t in ids}):
        chosen = [motions[t] for t in ids if activity[t] == name]
        scores = reconstruction_metrics(tokenizer, chosen)
        per_activity[name] = {k: scores[k] for k in ("n_trials", "joint_angle_mae_deg")}
    result["per_activity"] = per_activity
    return result, [motions[t] for t in ids]


def reference_quality(tokenizer, folder: Path) -> dict:
    from biomechgpt.training.motion_tokenizer import load_real_motions, reconstruction_metrics

    motions, info = load_real_motions(folder)
    per_file = {}
    keys = ("joint_angle_mae_deg", "joint_angle_mae_deg_per_group", "pelvis_velocity_mae_m_s",
            "pelvis_velocity_1s_mae_m_s", "heading_mae_deg")
    for name, motion in zip(info["files"], motions):
        scores = reconstruction_metrics(tokenizer, [motion])
        per_file[name] = {k: scores[k] for k in keys}
        per_file[name]["n_frames"] = motion.n_frames
        per_file[name]["coordinates_present"] = int(motion.mask.sum())
        check = tokenizer.check_motion(motion)
        per_file[name]["out_of_distribution"] = None if check is None else check.out_of_range
    # one line per subfolder (e.g. treadmill_walking_expert3/) and one for the files at the top
    per_folder = {}
    for sub in sorted({str(Path(n).parent) for n in info["files"]}):
        chosen = [m for n, m in zip(info["files"], motions) if str(Path(n).parent) == sub]
        scores = reconstruction_metrics(tokenizer, chosen)
        per_folder[sub] = {k: scores[k] for k in ("n_trials", "joint_angle_mae_deg", "joint_angle_mae_deg_per_group")}
    overall = reconstruction_metrics(tokenizer, motions)
    return {"folder": str(folder), "skipped": info["skipped"], "overall": {k: overall.get(k) for k in SUMMARY_KEYS},
            "per_folder": per_folder, "per_file": per_file}


def _groups(scores: dict) -> str:
    return ", ".join(f"{g} {v:.2f}" for g, v in (scores.get("joint_angle_mae_deg_per_group") or {}).items())


def speed(tokenizer, motions: list, threads: int) -> dict:
    from biomechgpt import Motion

    torch.set_num_threads(threads)
    # a 30-second trial: the longest held-out trial, repeated end to end if it is shorter
    longest = max(motions, key=lambda m: m.n_frames)
    reps = -(-900 // longest.n_frames)
    values = np.concatenate([longest.values] * reps)[:900]
    trial = Motion(list(longest.coordinates), values, longest.frame_rate, longest.mask.copy())
    with torch.inference_mode():
        for _ in range(5):
            tokenizer.encode(trial)
        times = []
        for _ in range(50):
            start = time.perf_counter()
            tokenizer.encode(trial)
            times.append(time.perf_counter() - start)
        batch = motions[:256]
        tokenizer(batch)
        start = time.perf_counter()
        tokenizer(batch)
        batch_seconds = time.perf_counter() - start
    return {
        "threads": threads,
        "trial_30s_encode_ms_median": 1e3 * statistics.median(times),
        "trial_30s_encode_ms_p90": 1e3 * sorted(times)[int(0.9 * len(times))],
        "batch_trials": len(batch),
        "batch_mean_frames": float(np.mean([m.n_frames for m in batch])),
        "batch_trials_per_second": len(batch) / batch_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", required=True, type=Path, help="a folder from biomechgpt train-tokenizer")
    parser.add_argument("--cohort", required=True, type=Path, help="the cohort it was trained on")
    parser.add_argument("--reference", type=Path, default=REFERENCE_MOTION_DIR,
                        help="real recordings (every motion file, subfolders included)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the JSON (default TOKENIZER/benchmark.json)")
    parser.add_argument("--max-trials", type=int, default=600, help="held-out trials scored (default 600)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the timing (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from biomechgpt import MotionTokenizer

    tokenizer = MotionTokenizer.from_pretrained(args.tokenizer)
    started = time.perf_counter()
    held_out, motions = held_out_quality(tokenizer, args.cohort, args.max_trials, args.seed)
    result = {
        "tokenizer": str(args.tokenizer),
        "cohort": str(args.cohort),
        "held_out_test_split": held_out,
        "reference_recordings": reference_quality(tokenizer, args.reference) if args.reference.is_dir() else None,
        "speed": speed(tokenizer, motions, args.threads),
        "torch_version": torch.__version__,
        "bench_seconds": None,
    }
    result["bench_seconds"] = round(time.perf_counter() - started, 1)
    out = args.out if args.out is not None else args.tokenizer / "benchmark.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"held-out test split ({held_out['n_trials']} trials, {held_out['participants']} participants)")
    for key in SUMMARY_KEYS[1:-1]:
        print(f"  {key:<28} {held_out[key]}")
    print(f"  {'per angle group (deg)':<28} {_groups(held_out)}")
    for name, scores in held_out["per_activity"].items():
        print(f"  {name:<28} {scores['joint_angle_mae_deg']:.2f} deg ({scores['n_trials']} trials)")
    if result["reference_recordings"]:
        ref = result["reference_recordings"]
        print(f"real recordings in {ref['folder']}")
        for key in ("joint_angle_mae_deg", "pelvis_velocity_mae_m_s", "pelvis_velocity_1s_mae_m_s", "heading_mae_deg"):
            print(f"  {key:<28} {ref['overall'][key]}")
        print(f"  {'per angle group (deg)':<28} {_groups(ref['overall'])}")
        for sub, scores in ref["per_folder"].items():
            name = "(top level)" if sub == "." else sub + "/"
            print(f"  {name:<28} {scores['joint_angle_mae_deg']:.2f} deg over {scores['n_trials']} files; "
                  f"{_groups(scores)}")
        for name, scores in ref["per_file"].items():
            flagged = scores["out_of_distribution"]
            note = "" if flagged is None else f"; flagged: {', '.join(flagged) or 'none'}"
            print(f"  {name:<40} {scores['joint_angle_mae_deg']:.2f} deg ({scores['coordinates_present']} coords; "
                  f"{_groups(scores)}{note})")
    sp = result["speed"]
    print(f"speed ({sp['threads']} threads)")
    print(f"  30 s trial encode           {sp['trial_30s_encode_ms_median']:.2f} ms median")
    print(f"  batch of {sp['batch_trials']:<4}                {sp['batch_trials_per_second']:.0f} trials/s")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
