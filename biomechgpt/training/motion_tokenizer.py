"""Training of the MotionTokenizer VQ-VAE on a cohort's training split, and its reconstruction metrics.

`train_motion_tokenizer(cohort_dir, out_dir)` samples random windows from the training trials, trains with AdamW,
checkpoints every `save_steps` steps (weights as safetensors, optimizer state as a tensors-only dict read back with
`torch.load(weights_only=True)`) and resumes from the newest checkpoint after an interruption. Every random draw of
step `s` comes from generators seeded with `(seed, s)`, so a resumed run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biomechgpt.processing.motion import (
    ANGLE_GROUPS,
    ARM_COORDINATES,
    CANONICAL_COORDINATES,
    LUMBAR_COORDINATES,
    TRANSLATION_COORDINATES,
    Motion,
    MotionInputError,
)

__all__ = [
    "MotionTokenizerTrainingArguments",
    "train_motion_tokenizer",
    "train_motion_tokenizer_on_motions",
    "reconstruction_metrics",
    "reconstruction_error_limits",
    "calibrate_motion_tokenizer",
    "load_real_motions",
    "JOINT_ANGLE_COORDINATES",
]

# Angles scored by the joint-angle error: every rotational coordinate except the heading (pelvis_rotation is
# decoded relative to the start and scored separately).
JOINT_ANGLE_COORDINATES: tuple[str, ...] = tuple(
    c for c in CANONICAL_COORDINATES if c not in TRANSLATION_COORDINATES and c != "pelvis_rotation"
)
# Coordinate groups that recordings often lack; training hides them from the encoder now and then (while still
# scoring their reconstruction) so the decoder learns to fill them in.
_DROPOUT_GROUPS: tuple[tuple[str, ...], ...] = (ARM_COORDINATES, LUMBAR_COORDINATES, ("pelvis_tx", "pelvis_tz"))
_CHECKPOINT_DIR = "checkpoints"


@dataclass
class MotionTokenizerTrainingArguments:
    r"""
    Hyperparameters of `train_motion_tokenizer` (the model's own settings live in `MotionTokenizerConfig`).

    Args:
        steps (`int`, defaults to 3000): optimisation steps.
        batch_size (`int`, defaults to 32): windows per step.
        min_window / max_window (`int`, defaults to 64 / 128): window length range in frames (multiples of the
            downsample factor; one length per step so a batch needs no padding).
        learning_rate (`float`, defaults to 2e-3): peak AdamW learning rate (linear warm-up, cosine decay to 5%).
        warmup_steps (`int`, defaults to 50).
        weight_decay (`float`, defaults to 1e-4).
        max_grad_norm (`float`, defaults to 1.0).
        coordinate_dropout (`float`, defaults to 0.1): chance per window to hide each present group (arms, lumbar,
            horizontal pelvis translation) from the encoder.
        save_steps (`int`, defaults to 250): checkpoint interval.
        shared_angle_scale (`bool`, defaults to True): normalise all joint angles by one common scale (their
            pooled standard deviation) rather than one per angle; velocities and the pelvis height keep their own.
        max_train_frames (`int`, defaults to 3_000_000): cap on the frames kept in memory (trials drawn at random).
        max_validation_trials (`int`, defaults to 300): validation trials scored at the end.
        seed (`int`, defaults to 0).
        num_threads (`int`, *optional*): torch CPU threads while training (restored afterwards); `None` keeps the
            current setting. One thread is faster for tiny models and on a machine shared with other jobs.
    """

    steps: int = 3000
    batch_size: int = 32
    min_window: int = 64
    max_window: int = 128
    learning_rate: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 1e-4
    max_grad_norm: float = 1.0
    coordinate_dropout: float = 0.1
    save_steps: int = 250
    shared_angle_scale: bool = True
    max_train_frames: int = 3_000_000
    max_validation_trials: int = 300
    seed: int = 0
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 < self.min_window <= self.max_window:
            raise ValueError(f"need 0 < min_window <= max_window, got {self.min_window}, {self.max_window}")
        if not 0.0 <= self.coordinate_dropout < 1.0:
            raise ValueError(f"coordinate_dropout must lie in [0, 1), got {self.coordinate_dropout}")
        if self.save_steps < 1:
            raise ValueError(f"save_steps must be >= 1, got {self.save_steps}")

    def learning_rate_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return self.learning_rate * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


# ----------------------------------------------------------------------------------------------------------------
# data


class _WindowSampler:
    """Random fixed-length windows from a list of feature arrays, drawn in proportion to their usable frames."""

    def __init__(self, features: list[np.ndarray], masks: list[np.ndarray], coordinates: Sequence[str]) -> None:
        self.features = features
        self.masks = masks
        self.lengths = np.array([f.shape[0] for f in features], dtype=np.int64)
        self.groups = [np.array([coordinates.index(c) for c in group]) for group in _DROPOUT_GROUPS]

    def sample(self, rng: np.random.Generator, batch_size: int, window: int, dropout: float):
        usable = np.maximum(self.lengths - window + 1, 0).astype(np.float64)
        if usable.sum() == 0:
            window = int(self.lengths.max())
            usable = np.maximum(self.lengths - window + 1, 0).astype(np.float64)
        picks = rng.choice(len(self.features), size=batch_size, p=usable / usable.sum())
        values = np.empty((batch_size, window, self.features[0].shape[1]), dtype=np.float32)
        true_mask = np.empty((batch_size, values.shape[2]), dtype=bool)
        for row, trial in enumerate(picks):
            start = int(rng.integers(0, self.lengths[trial] - window + 1))
            values[row] = self.features[trial][start : start + window]
            true_mask[row] = self.masks[trial]
        input_mask = true_mask.copy()
        if dropout > 0:
            hide = rng.random((batch_size, len(self.groups))) < dropout
            for g, cols in enumerate(self.groups):
                input_mask[np.ix_(hide[:, g], cols)] = False
        # never hide everything a window has
        empty = ~input_mask.any(axis=1)
        input_mask[empty] = true_mask[empty]
        return values, input_mask, true_mask


def _feature_statistics(
    features: list[np.ndarray], masks: list[np.ndarray], coordinates: Sequence[str], shared_angle_scale: bool
):
    n_coords = len(coordinates)
    total = np.zeros(n_coords)
    total_sq = np.zeros(n_coords)
    count = np.zeros(n_coords)
    for f, m in zip(features, masks):
        x = f.astype(np.float64)
        total += np.where(m, x.sum(0), 0.0)
        total_sq += np.where(m, (x**2).sum(0), 0.0)
        count += np.where(m, x.shape[0], 0)
    mean = np.divide(total, count, out=np.zeros(n_coords), where=count > 0)
    var = np.divide(total_sq, count, out=np.ones(n_coords), where=count > 0) - np.where(count > 0, mean**2, 0.0)
    # a floor keeps nearly constant channels (e.g. a fixed mtp angle) from blowing up after normalisation
    std = np.sqrt(np.maximum(var, 0.0))
    std = np.maximum(std, 0.01 * max(float(np.median(std[count > 0])) if (count > 0).any() else 1.0, 1e-3))
    std = np.where(count > 0, std, 1.0)
    if shared_angle_scale:
        # one scale for every joint angle: the L1 loss then weighs each angle's error in degrees, as the
        # joint-angle metric does, instead of stretching the noise of nearly still joints (mtp, elbows while
        # walking) to the weight of the knee
        angles = np.array([c in JOINT_ANGLE_COORDINATES for c in coordinates]) & (count > 0)
        if angles.any():
            std[angles] = np.sqrt(np.mean(std[angles] ** 2))
    return mean.astype(np.float32), std.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# checkpoints


def _latest_checkpoint(out_dir: Path) -> Path | None:
    root = out_dir / _CHECKPOINT_DIR
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step-*") if (p / "trainer_state.json").is_file())
    return done[-1] if done else None


def _save_checkpoint(out_dir: Path, step: int, model, optimizer, state: dict) -> None:
    import torch
    from safetensors.torch import save_file

    root = out_dir / _CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)  # a directory rename is atomic: a checkpoint is either complete or absent
    for old in root.glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# training


def train_motion_tokenizer(
    cohort_dir: str | Path,
    out_dir: str | Path,
    *,
    config: Any = None,
    steps: int | None = None,
    seed: int = 0,
    resume: bool = True,
    args: MotionTokenizerTrainingArguments | None = None,
    progress: bool = True,
    callbacks: Sequence[Callable[[int, dict], None]] = (),
    real_motion_dir: str | Path | None = None,
) -> Path:
    r"""
    Train the MotionTokenizer on the training split of a cohort folder and save it to `out_dir`.

    Args:
        cohort_dir: a folder written by `biomechgpt simulate`.
        out_dir: the tokenizer folder (`config.json`, `model.safetensors`, `preprocessor_config.json`,
            `metrics.json`); checkpoints live in `out_dir/checkpoints/` until training finishes.
        config (`MotionTokenizerConfig` or `dict`, *optional*): model settings; defaults to the default config.
        steps (`int`, *optional*): overrides `args.steps`.
        seed (`int`): seeds initialisation and every random draw.
        resume (`bool`): continue from the newest checkpoint in `out_dir` (and return at once when `out_dir`
            already holds a finished tokenizer trained with the same settings).
        args ([`MotionTokenizerTrainingArguments`], *optional*): training hyperparameters.
        progress (`bool`): show progress bars.
        callbacks: functions called as `callback(step, logs)` after every step.
        real_motion_dir (`str` or `Path`, *optional*): a folder of real recordings (searched with its subfolders,
            see [`load_real_motions`]); the tokenizer's reconstruction error on them is written to `metrics.json`
            under `"real"`, beside the simulated `"validation"` error. They are scored only, never trained on.

    Returns:
        `Path` of `out_dir`.
    """
    cohort_dir = Path(cohort_dir)
    if not cohort_dir.is_dir():
        raise MotionInputError(f"{cohort_dir}: cohort folder not found (create one with biomechgpt simulate)")
    from biomechgpt.cohort import load_cohort

    cohort = load_cohort(cohort_dir)
    trials = cohort.trials
    train_ids = trials.loc[trials["split"] == "train", "trial_id"].tolist()
    val_ids = trials.loc[trials["split"] == "validation", "trial_id"].tolist()
    if not train_ids:
        raise MotionInputError(f"{cohort_dir}: the cohort has no training trials")
    args = _resolve_args(args, steps, seed)
    rng = np.random.default_rng([args.seed, 1])
    # cap the training frames held in memory: a random subset of trials, in a seed-determined order
    order = rng.permutation(len(train_ids))
    frames = trials.set_index("trial_id").loc[train_ids, "n_frames"].to_numpy()
    keep = order[np.cumsum(frames[order]) <= args.max_train_frames]
    if keep.size == 0:
        keep = order[:1]
    chosen = [train_ids[i] for i in sorted(keep)]
    val_chosen = [val_ids[i] for i in sorted(rng.permutation(len(val_ids))[: args.max_validation_trials])]
    real_motions, real_info = load_real_motions(real_motion_dir) if real_motion_dir is not None else ([], None)
    train_motions = _iter_with_progress(cohort.iter_motions(chosen), len(chosen), "loading training trials", progress)
    val_motions = list(m for _, m in cohort.iter_motions(val_chosen)) if val_chosen else []
    return train_motion_tokenizer_on_motions(
        train_motions,
        out_dir,
        validation_motions=val_motions,
        real_motions=real_motions,
        real_info=real_info,
        config=config,
        args=args,
        resume=resume,
        progress=progress,
        callbacks=callbacks,
        data_info={"cohort": str(cohort_dir), "train_trials": len(chosen), "train_trials_available": len(train_ids)},
    )


def _iter_with_progress(pairs: Iterable[tuple[str, Motion]], total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    for _, motion in tqdm(pairs, total=total, desc=desc, disable=not progress, leave=False):
        yield motion


def _resolve_args(args, steps, seed) -> MotionTokenizerTrainingArguments:
    args = MotionTokenizerTrainingArguments() if args is None else args
    overrides = {"seed": seed}
    if steps is not None:
        overrides["steps"] = steps
    return MotionTokenizerTrainingArguments(**{**asdict(args), **overrides})


def _resolve_config(config):
    from biomechgpt.processing.configuration_motion_tokenizer import MotionTokenizerConfig

    if config is None:
        return MotionTokenizerConfig()
    if isinstance(config, dict):
        return MotionTokenizerConfig(**config)
    if isinstance(config, MotionTokenizerConfig):
        return config
    raise TypeError(f"config must be a MotionTokenizerConfig, a dict or None, got {type(config).__name__}")


def train_motion_tokenizer_on_motions(
    train_motions: Iterable[Motion],
    out_dir: str | Path,
    *,
    validation_motions: Sequence[Motion] = (),
    config: Any = None,
    args: MotionTokenizerTrainingArguments | None = None,
    resume: bool = True,
    progress: bool = True,
    callbacks: Sequence[Callable[[int, dict], None]] = (),
    data_info: dict | None = None,
    real_motions: Sequence[Motion] = (),
    real_info: dict | None = None,
) -> Path:
    """Train on canonical motions held in memory (what `train_motion_tokenizer` does after reading the cohort).

    The validation motions are scored (`metrics.json` `"validation"`) and set the tokenizer's
    `reconstruction_error_limits` (the out-of-distribution check of [`MotionTokenizer.check_motion`]); the real
    motions are only scored (`"real"`, with `real_info` such as the folder and files)."""
    import torch

    args = MotionTokenizerTrainingArguments() if args is None else args
    threads = torch.get_num_threads()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    try:
        return _train_on_motions(
            train_motions, Path(out_dir), validation_motions, config, args, resume, progress, callbacks, data_info,
            real_motions, real_info,
        )
    finally:
        torch.set_num_threads(threads)


def _train_on_motions(
    train_motions, out_dir, validation_motions, config, args, resume, progress, callbacks, data_info, real_motions,
    real_info,
):
    import torch
    from safetensors.torch import load_file
    from tqdm.auto import tqdm

    from biomechgpt.processing.feature_extraction_motion import MotionFeatureExtractor
    from biomechgpt.processing.modeling_motion_tokenizer import MotionTokenizerModel
    from biomechgpt.processing.tokenization_motion import METRICS_NAME, MotionTokenizer

    run_started = time.perf_counter()
    config = _resolve_config(config)
    ds = config.downsample_factor
    # what must match for a checkpoint to be resumed (the thread count may differ)
    settings = {
        "config": _config_fingerprint(config),
        "args": {k: v for k, v in asdict(args).items() if k != "num_threads"},
    }

    if resume and (out_dir / METRICS_NAME).is_file() and (out_dir / "model.safetensors").is_file():
        previous = json.loads((out_dir / METRICS_NAME).read_text()).get("training", {})
        if previous.get("settings") == settings and previous.get("completed_steps") == args.steps:
            return out_dir

    extractor = MotionFeatureExtractor.from_config(config)
    features, masks = [], []
    for i, motion in enumerate(train_motions):
        motion = extractor.as_motion(motion, name=f"training motion {i}")
        f, m = extractor.motion_to_features(motion)
        features.append(f)
        masks.append(m)
    if not features:
        raise MotionInputError("training motions: none given")
    sampler = _WindowSampler(features, masks, config.coordinates)
    min_w = max(ds, args.min_window // ds * ds)
    max_w = max(min_w, args.max_window // ds * ds)

    checkpoint = _latest_checkpoint(out_dir) if resume else None
    if not resume:
        shutil.rmtree(out_dir / _CHECKPOINT_DIR, ignore_errors=True)
    torch.manual_seed(args.seed)
    model = MotionTokenizerModel(config)
    mean, std = _feature_statistics(features, masks, config.coordinates, args.shared_angle_scale)
    model.set_feature_statistics(torch.from_numpy(mean), torch.from_numpy(std))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    start_step, history = 0, []
    if checkpoint is not None:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        if state.get("settings") != settings:
            raise ValueError(
                f"{checkpoint}: this checkpoint was trained with other settings; use another --out or resume=False"
            )
        model.load_state_dict(load_file(str(checkpoint / "model.safetensors")))
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
        start_step, history = int(state["step"]), list(state["history"])

    model.train()
    started = time.perf_counter()
    bar = tqdm(total=args.steps, initial=start_step, desc="training motion tokenizer", disable=not progress)
    step = start_step
    logs: dict = {}
    try:
        for step in range(start_step, args.steps):
            rng = np.random.default_rng([args.seed, step])
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            window = int(rng.integers(min_w // ds, max_w // ds + 1)) * ds
            values, input_mask, true_mask = sampler.sample(rng, args.batch_size, window, args.coordinate_dropout)
            values_t = torch.from_numpy(values)
            input_mask_t = torch.from_numpy(input_mask)
            true_mask_t = torch.from_numpy(true_mask)
            if not bool(model.quantizer.initialized):
                with torch.no_grad():  # data-dependent codebook initialisation from the first batch
                    first = model.encode(values_t, coordinate_mask=input_mask_t)
                    model.quantizer.replace_dead_codes(first.latents.reshape(-1, config.codebook_dim), generator)
            for group in optimizer.param_groups:
                group["lr"] = args.learning_rate_at(step)
            out = model(values_t, coordinate_mask=input_mask_t, loss_coordinate_mask=true_mask_t)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            reseeded = model.quantizer.replace_dead_codes(
                out.latents.detach().reshape(-1, config.codebook_dim), generator
            )
            logs = {
                "step": step + 1,
                "loss": float(out.loss.detach()),
                "reconstruction_loss": float(out.reconstruction_loss.detach()),
                "velocity_loss": float(out.velocity_loss.detach()),
                "commitment_loss": float(out.commitment_loss.detach()),
                "perplexity": float(out.perplexity),
                "reseeded_codes": reseeded,
                "learning_rate": args.learning_rate_at(step),
            }
            if (step + 1) % 50 == 0 or step + 1 == args.steps or step == 0:
                history.append(logs)
            bar.update(1)
            bar.set_postfix(loss=f"{logs['loss']:.4f}", ppl=f"{logs['perplexity']:.0f}", refresh=False)
            if (step + 1) % args.save_steps == 0 and step + 1 < args.steps:
                _save_checkpoint(
                    out_dir, step + 1, model, optimizer, {"step": step + 1, "settings": settings, "history": history}
                )
            for callback in callbacks:
                callback(step + 1, logs)
    except KeyboardInterrupt:
        done = int(logs.get("step", start_step))
        if done > start_step:
            _save_checkpoint(out_dir, done, model, optimizer, {"step": done, "settings": settings, "history": history})
        bar.close()
        raise
    bar.close()
    train_seconds = time.perf_counter() - started

    tokenizer = MotionTokenizer(model.eval(), extractor)
    metrics: dict[str, Any] = {
        "training": {
            "completed_steps": args.steps,
            "resumed_from_step": start_step,
            "seconds_this_run": round(train_seconds, 2),
            "seconds_per_step": round(train_seconds / max(1, args.steps - start_step), 4),
            "final": logs,
            "history": history,
            "settings": settings,
            "num_parameters": int(sum(p.numel() for p in model.parameters())),
            **(data_info or {}),
            "train_trials_used": len(features),
            "train_frames_used": int(sampler.lengths.sum()),
        }
    }
    if validation_motions:
        metrics["validation"] = reconstruction_metrics(tokenizer, validation_motions)
        # held-out trials of the training distribution set what counts as an unusual reconstruction error
        limits = reconstruction_error_limits(tokenizer, validation_motions, config.reconstruction_error_percentile)
        model.config.reconstruction_error_limits = limits or None
        metrics["validation"]["reconstruction_error_limits_deg"] = limits
    if real_motions:
        metrics["real"] = {**(real_info or {}), **reconstruction_metrics(tokenizer, real_motions)}
    # loading the training trials, training and validation (the cohort's validation trials are read before)
    metrics["training"]["seconds_total_this_run"] = round(time.perf_counter() - run_started, 2)
    tokenizer.metrics = metrics
    tokenizer.save_pretrained(out_dir)
    shutil.rmtree(out_dir / _CHECKPOINT_DIR, ignore_errors=True)
    return out_dir


def _config_fingerprint(config) -> dict:
    keys = (
        "coordinates", "frame_rate", "downsample_factor", "hidden_size", "num_residual_blocks", "dilation_growth",
        "codebook_size", "codebook_dim", "commitment_weight", "velocity_loss_weight", "ema_decay",
        "dead_code_patience", "min_frames",
    )  # fmt: skip
    return {k: getattr(config, k) for k in keys}


# ----------------------------------------------------------------------------------------------------------------
# metrics


def reconstruction_metrics(tokenizer, motions: Iterable[Motion], *, batch_size: int = 64) -> dict:
    r"""
    Encode -> decode each motion and score the reconstruction against the input.

    Returns a dict with: `joint_angle_mae_deg` (mean absolute error over every present frame and joint angle in
    `JOINT_ANGLE_COORDINATES`), `joint_angle_mae_deg_per_coordinate`, `heading_mae_deg` (pelvis_rotation relative
    to the first frame), `pelvis_height_mae_cm`, `pelvis_velocity_mae_m_s` (horizontal pelvis velocity in the
    heading frame, mean vector error per frame), `pelvis_velocity_1s_mae_m_s` (the same for one-second means),
    `joint_angle_mae_deg_per_group` (the same per angle group of `ANGLE_GROUPS`: pelvis and legs, arms, lumbar),
    `codebook_perplexity`, `codebook_usage` (share of codes used at least once),
    `n_trials`, `n_frames`.
    """
    extractor = tokenizer.feature_extractor
    coords = list(extractor.coordinates)
    angle_idx = np.array([coords.index(c) for c in JOINT_ANGLE_COORDINATES])
    i_rot, i_ty, i_tx, i_tz = (coords.index(c) for c in ("pelvis_rotation", "pelvis_ty", "pelvis_tx", "pelvis_tz"))
    abs_sum = np.zeros(len(angle_idx))
    abs_count = np.zeros(len(angle_idx))
    heading_err, height_err, velocity_err, velocity_1s_err = [], [], [], []
    counts = np.zeros(tokenizer.codebook_size, dtype=np.int64)
    n_trials = n_frames = 0
    batch: list[Motion] = []

    def flush() -> None:
        nonlocal n_trials, n_frames
        encoded = tokenizer(batch)
        lengths = encoded["motion_codes_lengths"].tolist()
        seqs = [encoded["motion_codes"][i, :n] for i, n in enumerate(lengths)]
        decoded = tokenizer.batch_decode(seqs, n_frames=[m.n_frames for m in batch])
        for motion, recon, seq in zip(batch, decoded, seqs):
            counts[:] += np.bincount(seq.numpy(), minlength=tokenizer.codebook_size)
            present = motion.mask
            err = np.abs(recon.values[:, angle_idx] - motion.values[:, angle_idx])  # (frames, angles)
            use = present[angle_idx]
            abs_sum[use] += err[:, use].sum(0)
            abs_count[use] += motion.n_frames
            if present[i_rot]:
                truth = np.unwrap(motion.values[:, i_rot].astype(np.float64))
                heading_err.append(np.abs(recon.values[:, i_rot] - (truth - truth[0])))
            if present[i_ty]:
                height_err.append(np.abs(recon.values[:, i_ty] - motion.values[:, i_ty]))
            if present[i_tx] and present[i_tz]:
                true_f, _ = extractor.motion_to_features(motion)
                rec_f, _ = extractor.motion_to_features(recon)
                diff = rec_f[:-1, [i_tx, i_tz]] - true_f[:-1, [i_tx, i_tz]]  # (frames - 1, 2)
                velocity_err.append(np.linalg.norm(diff, axis=1))
                # per-second means: the recorded positions carry frame-to-frame noise that no code can (or
                # should) reproduce, which the per-frame error above includes
                seconds = diff.shape[0] // int(extractor.frame_rate)
                if seconds:
                    blocks = diff[: seconds * int(extractor.frame_rate)].reshape(seconds, -1, 2).mean(axis=1)
                    velocity_1s_err.append(np.linalg.norm(blocks, axis=1))
            n_trials += 1
            n_frames += motion.n_frames
        batch.clear()

    for motion in motions:
        batch.append(extractor.as_motion(motion))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    if n_trials == 0:
        raise MotionInputError("motions: none given to score")
    probs = counts / max(1, counts.sum())
    nz = probs[probs > 0]
    per_coord = {
        c: float(np.degrees(s / n)) for c, s, n in zip(JOINT_ANGLE_COORDINATES, abs_sum, abs_count) if n > 0
    }
    per_group = {}
    for group, members in ANGLE_GROUPS.items():
        rows = [i for i, c in enumerate(JOINT_ANGLE_COORDINATES) if c in members and abs_count[i] > 0]
        if rows:
            per_group[group] = float(np.degrees(abs_sum[rows].sum() / abs_count[rows].sum()))

    def mean_of(chunks: list[np.ndarray], scale: float) -> float | None:
        return float(np.concatenate(chunks).mean() * scale) if chunks else None

    return {
        "n_trials": n_trials,
        "n_frames": n_frames,
        "joint_angle_mae_deg": float(np.degrees(abs_sum.sum() / max(1.0, abs_count.sum()))),
        "joint_angle_mae_deg_per_coordinate": per_coord,
        "joint_angle_mae_deg_per_group": per_group,
        "heading_mae_deg": mean_of(heading_err, 180.0 / np.pi),
        "pelvis_height_mae_cm": mean_of(height_err, 100.0),
        "pelvis_velocity_mae_m_s": mean_of(velocity_err, 1.0),
        "pelvis_velocity_1s_mae_m_s": mean_of(velocity_1s_err, 1.0),
        "codebook_perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
        "codebook_usage": float((counts > 0).mean()),
        "codes_used": int((counts > 0).sum()),
    }


def reconstruction_error_limits(tokenizer, motions: Iterable[Motion], percentile: float = 99.0) -> dict[str, float]:
    """The `percentile` percentile, per angle group, of the motions' reconstruction errors (degrees, as
    [`MotionTokenizer.reconstruction_errors`] measures them for the out-of-distribution check); groups no motion
    recorded are left out."""
    errors = tokenizer.reconstruction_errors(list(motions))
    limits = {}
    for group in ANGLE_GROUPS:
        values = [e[group] for e in errors if e.get(group) is not None]
        if values:
            # a floor keeps a group reconstructed almost perfectly (e.g. arms held still) from flagging noise
            limits[group] = round(max(float(np.percentile(values, percentile)), 0.5), 3)
    return limits


def load_real_motions(folder: str | Path) -> tuple[list[Motion], dict]:
    """Every motion file in `folder` and its subfolders (the suffixes `biomechgpt.load_motion` reads), read as
    canonical motions, for scoring the tokenizer on real recordings.

    Returns:
        `(motions, info)`: `info` holds `folder`, `files` (paths relative to it, the ones read) and `skipped`
        (`{file: reason}` for files that cannot be read).

    Raises:
        `MotionInputError`: the folder does not exist, or holds no readable motion file.
    """
    from biomechgpt.motion_io import SUPPORTED_SUFFIXES, load_motion

    folder = Path(folder)
    if not folder.is_dir():
        raise MotionInputError(f"{folder}: real-recordings folder not found")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
    motions, files, skipped = [], [], {}
    for path in paths:
        name = str(path.relative_to(folder))
        try:
            motions.append(load_motion(path))
            files.append(name)
        except MotionInputError as err:
            skipped[name] = str(err)
    if not motions:
        raise MotionInputError(f"{folder}: no readable motion file ({', '.join(SUPPORTED_SUFFIXES)}) in it or its "
                               "subfolders")
    return motions, {"folder": str(folder), "files": files, "skipped": skipped}


def calibrate_motion_tokenizer(folder: str | Path, cohort_dir: str | Path, *, max_trials: int = 300,
                               seed: int = 0, real_motion_dir: str | Path | None = None) -> dict[str, float]:
    """Give a trained MotionTokenizer the out-of-distribution limits training now writes, without training it again.

    The limits come from up to `max_trials` validation trials of the cohort it was trained on (as in training) and
    are written to `config.json` (every other entry kept) and `metrics.json`.

    Args:
        folder: a MotionTokenizer folder, or a model folder holding one under `motion_tokenizer/`.
        cohort_dir: the cohort the tokenizer was trained on.
        real_motion_dir: a folder of real recordings to score as training does (`metrics.json` `"real"`).

    Returns:
        The limits, degrees per angle group.
    """
    from biomechgpt.cohort import load_cohort
    from biomechgpt.processing.tokenization_motion import METRICS_NAME, MotionTokenizer

    folder = Path(folder)
    if (folder / "motion_tokenizer" / "config.json").is_file():
        folder = folder / "motion_tokenizer"
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        raise MotionInputError(f"{folder}: not a MotionTokenizer folder (no readable config.json)") from None
    if config.get("model_type") != "biomechgpt_motion_tokenizer":
        raise MotionInputError(f"{folder}: config.json is not a MotionTokenizer's ({config.get('model_type')!r})")
    if not Path(cohort_dir).is_dir():
        raise MotionInputError(f"{cohort_dir}: cohort folder not found")
    cohort = load_cohort(cohort_dir)
    trials = cohort.trials
    ids = trials.loc[trials["split"] == "validation", "trial_id"].tolist()
    if not ids:
        raise MotionInputError(f"{cohort_dir}: the cohort has no validation trials")
    real_motions, real_info = load_real_motions(real_motion_dir) if real_motion_dir is not None else ([], None)
    ids = [ids[i] for i in sorted(np.random.default_rng([seed, 1]).permutation(len(ids))[:max_trials])]
    tokenizer = MotionTokenizer.from_pretrained(folder)
    percentile = float(config.get("reconstruction_error_percentile", 99.0))
    limits = reconstruction_error_limits(tokenizer, [m for _, m in cohort.iter_motions(ids)], percentile)
    config.update(reconstruction_error_limits=limits, reconstruction_error_percentile=percentile,
                  out_of_distribution_factor=float(config.get("out_of_distribution_factor", 1.5)))
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    metrics_path = folder / METRICS_NAME
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    metrics.setdefault("validation", {})["reconstruction_error_limits_deg"] = limits
    metrics["validation"]["reconstruction_error_limits_trials"] = len(ids)
    if real_motions:
        metrics["real"] = {**real_info, **reconstruction_metrics(tokenizer, real_motions)}
    metrics_path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return limits
