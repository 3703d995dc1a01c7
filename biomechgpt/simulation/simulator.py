"""`simulate_cohort`: participants → trials → motions, written as a cohort folder (see ARCHITECTURE.md).

Work is split into shards of `PARTICIPANTS_PER_SHARD` participants; each shard is simulated and written by one
process, and every participant draws from their own seeded stream, so the files are byte-identical for any number
of workers.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from biomechgpt.labels import ACTIVITIES, SPLITS
from biomechgpt.processing.motion import CANONICAL_COORDINATES, CANONICAL_FRAME_RATE
from biomechgpt.simulation.activities import GAIT_ACTIVITIES, plan_trials, synthesize_trial
from biomechgpt.simulation.recording import apply_recording_artefacts
from biomechgpt.simulation.ground_truth import fsst_time, gait_ground_truth, tug_time
from biomechgpt.simulation.participants import draw_participant
from biomechgpt.simulation.writer import SHARD_PATTERN, write_npz, write_table

__all__ = ["simulate_cohort", "simulate_participant", "check_held_out", "PARTICIPANTS_PER_SHARD", "SPLIT_FRACTIONS",
           "GEN_COLUMNS", "FORMAT_VERSION"]

PARTICIPANTS_PER_SHARD = 25
SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}
FORMAT_VERSION = 1
# Generator inputs and realised values stored next to the measured ground truth (NaN where not applicable).
GEN_COLUMNS = ("gen_speed_m_s", "gen_cadence_steps_per_min", "gen_stride_length_m", "gen_stride_time_s",
               "gen_test_time_s", "gen_treadmill_speed_m_s", "gen_heading_deg", "gen_jump_height_m", "gen_sway_deg",
               "gen_turn_time_s")


def simulate_participant(index: int, seed: int, n_digits: int = 4):
    """Simulates one participant: (participant row, trial rows, trial motions). Trial rows lack split/storage."""
    person = draw_participant(index, seed, n_digits)
    # A second stream for the trials keeps a participant's attributes unchanged when trial synthesis changes.
    rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(index, 1)))
    # A third for the recording artefacts, so the movements (and their ground truth) do not depend on them.
    recording_rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(index, 2)))
    plans = plan_trials(person, rng)
    order = rng.permutation(len(plans))  # sessions do not follow a fixed order
    rows, motions = [], []
    nan = float("nan")
    for k, i in enumerate(order):
        plan = plans[int(i)]
        trial = synthesize_trial(person, plan, rng)
        n = trial.values.shape[0]
        row = {
            "trial_id": f"{person.participant_id}_T{k:02d}",
            "participant_id": person.participant_id,
            "activity": plan.activity,
            "speed_condition": plan.speed_condition if plan.activity == "walking" else None,
            "treadmill": bool(plan.treadmill),
            "protocol": plan.protocol,
            "n_frames": int(n),
            "duration_s": float(n / CANONICAL_FRAME_RATE),
            "has_arms": bool(plan.has_arms),
            "has_lumbar": bool(plan.has_lumbar),
            "cadence_steps_per_min": nan,
            "walking_speed_m_s": nan,
            "stride_length_m": nan,
            "test_time_s": nan,
            "recording_artefacts": "",
        }
        values64 = trial.values.astype(np.float64)
        if plan.activity in GAIT_ACTIVITIES:
            belt = trial.gen.get("gen_treadmill_speed_m_s") if plan.treadmill else None
            row.update(gait_ground_truth(values64, CANONICAL_FRAME_RATE, belt))
        elif plan.activity == "timed_up_and_go":
            row["test_time_s"] = tug_time(values64, CANONICAL_FRAME_RATE)
        elif plan.activity == "four_square_step_test":
            row["test_time_s"] = fsst_time(values64, CANONICAL_FRAME_RATE)
        for col in GEN_COLUMNS:
            row[col] = float(trial.gen.get(col, nan))
        # The ground truth above is the movement's; what the file holds also carries the recording's artefacts.
        trial.values, applied = apply_recording_artefacts(trial.values, trial.mask, recording_rng)
        row["recording_artefacts"] = ",".join(applied)
        rows.append(row)
        motions.append(trial)

    def mean_of(predicate, column):
        vals = [r[column] for r in rows if predicate(r) and np.isfinite(r[column])]
        return float(np.mean(vals)) if vals else nan

    participant = person.row()
    participant["tug_time_s"] = mean_of(lambda r: r["activity"] == "timed_up_and_go", "test_time_s")
    participant["fsst_time_s"] = mean_of(lambda r: r["activity"] == "four_square_step_test", "test_time_s")
    participant["ten_m_walk_speed_m_s"] = mean_of(lambda r: r["protocol"] == "ten_meter_walk", "walking_speed_m_s")
    return participant, rows, motions


def _simulate_shard(shard: int, indices: list[int], seed: int, n_digits: int, motions_dir: str):
    participants, trials, values, masks = [], [], [], []
    offset = 0
    for index in indices:
        participant, rows, motions = simulate_participant(index, seed, n_digits)
        participants.append(participant)
        for row, motion in zip(rows, motions):
            row["shard"] = shard
            row["offset"] = offset
            offset += motion.values.shape[0]
            values.append(motion.values)
            masks.append(motion.mask)
            trials.append(row)
    write_npz(Path(motions_dir) / SHARD_PATTERN.format(shard), {
        "values": np.concatenate(values, axis=0),
        "masks": np.stack(masks),
        "offsets": np.array([r["offset"] for r in trials], dtype=np.int64),
        "n_frames": np.array([r["n_frames"] for r in trials], dtype=np.int64),
        "trial_ids": np.array([r["trial_id"] for r in trials]),
    })
    return shard, participants, trials


def check_held_out(held_out: int | None, n_participants: int) -> int | None:
    """`held_out` as an int (or `None`), checked: at least 1, and leaving training participants in a cohort of
    `n_participants`. Raises `ValueError` naming the problem."""
    if held_out is None:
        return None
    if isinstance(held_out, bool) or not isinstance(held_out, (int, np.integer)) or held_out < 1:
        raise ValueError(f"held_out must be a positive integer, got {held_out!r}")
    if 2 * int(held_out) >= n_participants:
        raise ValueError(f"held_out {held_out}: validation and test would take {2 * int(held_out)} of the "
                         f"{n_participants} participants and leave none to train on")
    return int(held_out)


def _assign_splits(n: int, seed: int, held_out: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(2**31 - 1,)))
    if held_out is not None:
        n_val = n_test = held_out
    else:
        n_val = int(round(SPLIT_FRACTIONS["validation"] * n))
        n_test = int(round(SPLIT_FRACTIONS["test"] * n))
        if n >= 3:
            n_val, n_test = max(n_val, 1), max(n_test, 1)
        else:
            n_val = n_test = 0
    labels = np.array(["train"] * (n - n_val - n_test) + ["validation"] * n_val + ["test"] * n_test)
    return labels[rng.permutation(n)]


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"{out}: folder exists and is not empty (pass --overwrite to replace a cohort)")
        if not ((out / "cohort.json").exists() or (out / "participants.parquet").exists()):
            raise ValueError(f"{out}: not a cohort folder, refusing to overwrite it")
        shutil.rmtree(out)
    try:
        (out / "motions").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"{out}: cannot write there ({err.strerror or err})") from None


def simulate_cohort(out: str | Path, n_participants: int = 500, seed: int = 0, workers: int | None = None, *,
                    overwrite: bool = False, progress: bool = False,
                    participants_per_shard: int = PARTICIPANTS_PER_SHARD, held_out: int | None = None) -> Path:
    """Simulates a clinical cohort and writes it to `out`.

    Args:
        out (`str` or `Path`): the cohort folder to create (must be absent or empty unless `overwrite`).
        n_participants (`int`, defaults to 500): number of participants (about 3.6 minutes of motion each).
        seed (`int`, defaults to 0): the same seed gives byte-identical files.
        workers (`int`, *optional*): processes to use; defaults to the number of CPU cores.
        overwrite (`bool`, defaults to `False`): replace an existing cohort folder.
        progress (`bool`, defaults to `False`): show a progress bar on stderr.
        participants_per_shard (`int`, defaults to 25): participants per motion shard (the unit of parallel work).
        held_out (`int`, *optional*): participants in each of the validation and the test split, the rest train;
            defaults to `SPLIT_FRACTIONS` (15% each). A larger cohort with the same held-out splits gives the models
            more people to learn from at the same evaluation cost.

    Returns:
        `Path`: the cohort folder, readable with `biomechgpt.load_cohort`.
    """
    import pandas as pd

    if isinstance(n_participants, bool) or not isinstance(n_participants, (int, np.integer)) or n_participants < 1:
        raise ValueError(f"n_participants must be a positive integer, got {n_participants!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(participants_per_shard, bool) or not isinstance(participants_per_shard, (int, np.integer)) \
            or participants_per_shard < 1:
        raise ValueError(f"participants_per_shard must be a positive integer, got {participants_per_shard!r}")
    held_out = check_held_out(held_out, int(n_participants))
    n_participants, seed = int(n_participants), int(seed)
    out = Path(out)
    _prepare_out(out, overwrite)
    motions_dir = out / "motions"

    n_digits = max(4, len(str(n_participants - 1)))
    per_shard = int(participants_per_shard)
    shards = [list(range(s, min(s + per_shard, n_participants))) for s in range(0, n_participants, per_shard)]
    n_workers = min(workers or os.cpu_count() or 1, len(shards))
    results: dict[int, tuple[list, list]] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_participants, desc="simulate", unit="participant")
    if n_workers == 1:
        for shard, indices in enumerate(shards):
            _, participants, trials = _simulate_shard(shard, indices, seed, n_digits, str(motions_dir))
            results[shard] = (participants, trials)
            if bar is not None:
                bar.update(len(indices))
    else:
        # "spawn" keeps workers independent of whatever threads (torch, BLAS) the parent started.
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_simulate_shard, shard, indices, seed, n_digits, str(motions_dir))
                       for shard, indices in enumerate(shards)]
            for future in as_completed(futures):
                shard, participants, trials = future.result()
                results[shard] = (participants, trials)
                if bar is not None:
                    bar.update(len(shards[shard]))
    if bar is not None:
        bar.close()

    participant_rows = [row for s in range(len(shards)) for row in results[s][0]]
    trial_rows = [row for s in range(len(shards)) for row in results[s][1]]
    splits = _assign_splits(n_participants, seed, held_out)
    split_of = {row["participant_id"]: str(split) for row, split in zip(participant_rows, splits)}
    participants = pd.DataFrame(participant_rows)
    participants.insert(1, "split", [split_of[p] for p in participants["participant_id"]])
    front = ["participant_id", "split", "age", "sex", "height_m", "mass_kg", "leg_length_m", "diagnosis", "severity",
             "impaired", "affected_side", "assistive_device", "fall_history", "fall_probability", "tug_time_s",
             "fsst_time_s", "ten_m_walk_speed_m_s"]
    participants = participants[front + [c for c in participants.columns if c not in front]]
    # Optional text columns may be all null in a small cohort; fix their type so every cohort has the same schema.
    for column in ("gen_amputation_level", "gen_pd_more_affected"):
        participants[column] = participants[column].astype("string")
    trials = pd.DataFrame(trial_rows)
    trials.insert(2, "split", [split_of[p] for p in trials["participant_id"]])
    trials["speed_condition"] = trials["speed_condition"].astype("string")
    assert set(trials["activity"]) <= set(ACTIVITIES) and set(participants["split"]) <= set(SPLITS)
    write_table(out / "participants.parquet", participants)
    write_table(out / "trials.parquet", trials)
    hours = float(trials["duration_s"].sum() / 3600.0)
    meta = {
        "format": "biomechgpt-cohort",
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "n_participants": n_participants,
        "n_trials": int(len(trials)),
        "hours_of_motion": round(hours, 3),
        "frame_rate": CANONICAL_FRAME_RATE,
        "coordinates": list(CANONICAL_COORDINATES),
        "units": "radians for angles, meters for pelvis_tx/ty/tz; knee flexion positive",
        "shards": [SHARD_PATTERN.format(s) for s in range(len(shards))],
        "split_fractions": SPLIT_FRACTIONS if held_out is None else {
            split: round(float((splits == split).mean()), 4) for split in SPLIT_FRACTIONS},
    }
    if held_out is not None:
        meta["held_out"] = held_out
    (out / "cohort.json").write_text(json.dumps(meta, indent=1) + "\n")
    return out
