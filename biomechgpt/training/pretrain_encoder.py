"""Stage 1 of training a BiomechGPT that reads continuous motion: the motion encoder learns to read motion first.

A language model that must discover, from a few answer words per trial, which motion channels matter learns slowly
(the tiny LM saw each trial ~3 times and scored diagnosis macro-F1 0.21). So the encoder is first trained alone,
cheaply (no language model in the loop), on every task's trial-level target at once: one linear head per task on its
soft tokens, cross-entropy for closed-set tasks and mean squared error on standardised values for numeric ones,
each task's loss averaged over the trials that carry it and the tasks weighted equally (a task asked of few trials,
like the TUG time, counts as much as the activity). An encoder with readout tokens keeps its heads (they feed those
tokens); otherwise the heads are dropped. Stage 2 trains the projector and the language model to put what the soft
tokens hold into words. The encoder reads the feature frames and, with a descriptor token, the recording's gait
descriptors (computed from the same motion); the targets are the corpus's own answers.

Selection is on the validation split: the epoch with the highest mean validation score (each task's headline
metric: macro-F1 for closed-set tasks, Pearson r for numeric ones) is kept, the lower validation loss breaking ties.
The loss flattens while the scores still rise (the default run, 12 epochs: loss 0.302 at epoch 9 and 0.303 at 11,
mean score 0.848 and 0.854, diagnosis 0.64 and 0.67): it also prices how sure each head is, which an answer that
takes the most likely class does not need.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EncoderTargets", "encoder_targets", "mirror_label_order", "pretrain_motion_encoder", "readout_calibration"]

logger = logging.getLogger(__name__)


@dataclass
class EncoderTargets:
    """Trial-level targets of every closed-set and numeric task.

    Args:
        trial_ids (`list[str]`): the trials, in row order of the arrays.
        classes (`dict[str, list[str]]`): closed-set task -> its labels (class index order).
        labels (`dict[str, np.ndarray]`): closed-set task -> class index per trial, -1 where the trial has none.
        values (`dict[str, np.ndarray]`): numeric task -> value per trial in the task's unit, NaN where none.
    """

    trial_ids: list[str]
    classes: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    values: dict[str, np.ndarray]


def encoder_targets(frame, task_kinds: dict[str, str], task_units: dict[str, str],
                    classes: dict[str, list[str]] | None = None) -> EncoderTargets:
    """Per-trial targets from corpus rows (`trial_id`, `task`, `target_label`, `target_value`, `target_unit`).

    Args:
        frame (`pd.DataFrame`): corpus rows of one split.
        task_kinds (`dict[str, str]`): task -> "closed" / "numeric" / "free" (free tasks are skipped).
        task_units (`dict[str, str]`): numeric task -> its unit; values in other units are converted.
        classes (`dict[str, list[str]]`, *optional*): the label order (pass the training split's to a validation
            split, whose unseen labels then count as missing).
    """
    from biomechgpt.dataset_builder.tasks import convert_unit

    trial_ids = sorted(frame["trial_id"].unique())
    row_of = {t: i for i, t in enumerate(trial_ids)}
    classes = dict(classes) if classes is not None else {}
    labels: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    for task, rows in frame.groupby("task", sort=True):
        kind = task_kinds.get(task)
        first = rows.drop_duplicates("trial_id")
        index = first["trial_id"].map(row_of).to_numpy()
        if kind == "closed":
            if task not in classes:
                classes[task] = sorted(str(x) for x in rows["target_label"].dropna().unique())
            lookup = {label: k for k, label in enumerate(classes[task])}
            out = np.full(len(trial_ids), -1, dtype=np.int64)
            out[index] = [lookup.get(str(x), -1) for x in first["target_label"]]
            labels[task] = out
        elif kind == "numeric":
            unit = task_units.get(task)
            out = np.full(len(trial_ids), np.nan)
            converted = [float(convert_unit(float(v), u, unit)) if isinstance(u, str) and unit and u != unit
                         else float(v) for v, u in zip(first["target_value"], first["target_unit"])]
            out[index] = converted
            values[task] = out
    return EncoderTargets(trial_ids, {t: classes[t] for t in labels}, labels, values)


def pretrain_motion_encoder(
    encoder: Any,
    train_features: dict[str, dict],
    train_targets: EncoderTargets,
    *,
    validation_features: dict[str, dict] | None = None,
    validation_targets: EncoderTargets | None = None,
    epochs: float = 12.0,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    weight_decay: float = 0.01,
    window: int = 1024,
    seed: int = 0,
    bf16: bool = False,
    progress: bool = True,
    report_features: dict[str, dict] | None = None,
    report_targets: EncoderTargets | None = None,
    mirror: float = 0.0,
) -> dict:
    """Train `encoder` (a `BiomechGPTMotionEncoder`) in place on every task's trial-level target.

    Args:
        encoder (`BiomechGPTMotionEncoder`): the encoder; its feature statistics are set here from the training
            frames.
        train_features (`dict[str, dict]`): trial id -> `{"motion_values": (frames, channels) of the whole trial,
            "coordinate_mask", "motion_duration"}` and, for an encoder that reads them, `"motion_descriptors"` (a
            random window of at most `window` frames is read each time; the descriptors are of the whole trial).
        train_targets ([`EncoderTargets`]): the training targets.
        validation_features, validation_targets (*optional*): for selecting the epoch (middle windows).
        epochs (`float`, defaults to 12): passes over the training trials.
        batch_size (`int`, defaults to 32), learning_rate (`float`, defaults to 2e-3), weight_decay (`float`).
        window (`int`, defaults to 1024): frames read per trial (the processor's crop at answer time).
        seed (`int`, defaults to 0): heads, batches and crops.
        bf16 (`bool`, defaults to `False`): bfloat16 autocast.
        progress (`bool`, defaults to `True`): a progress bar.
        report_features, report_targets (*optional*): a held-out split scored once with the selected epoch's encoder
            and heads (`report_scores`): the encoder with linear heads is itself a neural baseline.
        mirror (`float`, defaults to 0): the share of training crops read as their left-right mirror image
            (`Motion.mirrored`), with "left" and "right" swapped in every closed-set target that has both. An
            affected side is a property of the trial that a mirror image turns into the other side; without it,
            each side is learned from half the impaired trials.

    Returns:
        `dict`: the learning curve (training and validation loss per epoch, validation scores per task and the
        numeric heads' root-mean-square errors), the selected epoch, the time taken, and `readout_calibration` (see
        [`readout_calibration`]); with a report split, its `report_scores` and, for an encoder without descriptors,
        `report_scores_both_views` (each head reading the trial and its mirror image, as a two-view readout does).
    """
    import torch
    from torch import nn
    from tqdm.auto import tqdm

    started = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    trials = [t for t in train_targets.trial_ids if t in train_features]
    if not trials:
        raise ValueError("no training trial has motion features")
    stacked = np.concatenate([train_features[t]["motion_values"] for t in trials])
    present = np.stack([train_features[t]["coordinate_mask"] for t in trials]).mean(0) > 0
    mean = np.where(present, stacked.mean(0), 0.0)
    std = np.where(present, stacked.std(0), 1.0)
    encoder.set_feature_statistics(torch.as_tensor(mean, dtype=torch.float32),
                                   torch.as_tensor(std, dtype=torch.float32))
    del stacked
    if getattr(encoder, "descriptor_size", 0):
        missing = [t for t in trials if "motion_descriptors" not in train_features[t]]
        if missing:
            raise ValueError(f"the motion encoder reads descriptors, and {len(missing)} training trials have none "
                             f"(e.g. {missing[0]})")
        descriptors = np.stack([train_features[t]["motion_descriptors"] for t in trials]).astype(np.float64)
        encoder.set_descriptor_statistics(torch.as_tensor(descriptors.mean(0), dtype=torch.float32),
                                          torch.as_tensor(descriptors.std(0), dtype=torch.float32))

    value_stats = {task: (float(np.nanmean(v)), float(np.nanstd(v)) or 1.0)
                   for task, v in train_targets.values.items()}
    heads = _task_heads(encoder, train_targets)
    dropout = nn.Dropout(0.1)
    parameters = list({id(p): p for p in [*encoder.parameters(), *heads.parameters()]}.values())
    optimiser = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    steps_per_epoch = max(1, math.ceil(len(trials) / batch_size))
    total_steps = max(1, int(round(epochs * steps_per_epoch)))
    warmup = max(1, total_steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total_steps))))
    row_of = {t: i for i, t in enumerate(train_targets.trial_ids)}
    lengths = {t: min(len(train_features[t]["motion_values"]), window) for t in trials}
    if not 0.0 <= mirror <= 1.0:
        raise ValueError(f"mirror must be a share between 0 and 1, got {mirror}")
    if mirror and getattr(encoder, "descriptor_size", 0):
        raise ValueError("mirror: the descriptor token reads descriptors of the unmirrored recording; "
                         "train an encoder with descriptors without mirror images")
    swapped = _mirrored_labels(train_targets)

    def batch_inputs(features: dict[str, dict], ids: list[str], random_crop: bool,
                     flip: np.ndarray | None = None) -> dict:
        from biomechgpt.processing.motion import mirror_frames
        from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor

        items = []
        for k, t in enumerate(ids):
            item = features[t]
            values = item["motion_values"]
            start = int(rng.integers(0, len(values) - window + 1)) if random_crop and len(values) > window else None
            values = BiomechGPTProcessor.crop_frames(values, window, start=start)
            if flip is not None and flip[k]:
                values, mask = mirror_frames(values, item["coordinate_mask"])
                item = {**item, "coordinate_mask": mask}
            items.append({**item, "motion_values": values})
        return BiomechGPTProcessor.collate_motion_inputs(items)

    def task_losses(tokens: torch.Tensor, targets: EncoderTargets, rows: np.ndarray,
                    flip: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        flat = dropout(tokens.flatten(1).float())
        losses = {}
        for task, labels in targets.labels.items():
            if task not in heads:
                continue
            y = labels[rows]
            if flip is not None and task in swapped:
                y = np.where(flip, swapped[task][y], y)
            y = torch.as_tensor(y)
            keep = y >= 0
            if keep.any():
                losses[task] = nn.functional.cross_entropy(heads[task](flat[keep]), y[keep])
        for task, values in targets.values.items():
            if task not in heads:
                continue
            y = torch.as_tensor(values[rows], dtype=torch.float32)
            keep = ~torch.isnan(y)
            if keep.any():
                mu, sigma = value_stats[task]
                losses[task] = nn.functional.mse_loss(heads[task](flat[keep])[:, 0], (y[keep] - mu) / sigma)
        return losses

    def evaluate(features: dict[str, dict], targets: EncoderTargets,
                 both_views: bool = False) -> tuple[float, dict[str, float], dict]:
        encoder.eval()
        heads.eval()
        dropout.eval()
        val_ids = [t for t in targets.trial_ids if t in features]
        val_row = {t: i for i, t in enumerate(targets.trial_ids)}
        sums: dict[str, float] = {}
        scores: dict[str, list] = {}
        with torch.no_grad():
            for start in range(0, len(val_ids), 64):
                ids = val_ids[start:start + 64]
                rows = np.array([val_row[t] for t in ids])
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    tokens = encoder.encode(**batch_inputs(features, ids, False))
                flat = tokens.flatten(1).float()
                mirrored = None
                if both_views:
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        mirrored = encoder.encode(**batch_inputs(features, ids, False, np.ones(len(ids), bool)))
                    mirrored = mirrored.flatten(1).float()
                for task, loss in task_losses(tokens, targets, rows).items():
                    sums[task] = sums.get(task, 0.0) + float(loss) * len(ids)
                for task, labels in targets.labels.items():
                    y = labels[rows]
                    logits = torch.log_softmax(heads[task](flat), 1)
                    if mirrored is not None:
                        image = torch.log_softmax(heads[task](mirrored), 1)
                        logits = logits + (image[:, swapped[task][:-1]] if task in swapped else image)
                    pred = logits.argmax(1).numpy()
                    scores.setdefault(task, []).extend(zip(y[y >= 0], pred[y >= 0]))
                for task, values in targets.values.items():
                    y = values[rows]
                    mu, sigma = value_stats[task]
                    value = heads[task](flat)[:, 0]
                    if mirrored is not None:
                        value = (value + heads[task](mirrored)[:, 0]) / 2
                    pred = value.numpy() * sigma + mu
                    scores.setdefault(task, []).extend(zip(y[~np.isnan(y)], pred[~np.isnan(y)]))
        encoder.train()
        heads.train()
        dropout.train()
        metric, errors = {}, {}
        for task, pairs in scores.items():
            if not pairs:
                continue
            y, p = (np.asarray(x) for x in zip(*pairs))
            metric[task] = _macro_f1(y, p) if task in targets.labels else _pearson(y, p)
            if task in targets.values:
                errors[task] = float(np.sqrt(np.mean((y - p) ** 2)))
        loss = sum(sums.values()) / max(1, len(val_ids)) / max(1, len(sums))
        return loss, metric, errors

    curve: list[dict] = []
    best_state, best_key, best_epoch, best_errors = None, (-math.inf, -math.inf), 0, {}
    has_validation = validation_features is not None and validation_targets is not None
    encoder.train()
    bar = tqdm(total=total_steps, desc="training motion encoder", unit="step", disable=not progress)
    step, epoch = 0, 0
    while step < total_steps:
        epoch += 1
        running, count = 0.0, 0
        for ids in _length_grouped_batches(trials, lengths, batch_size, generator):
            if step >= total_steps:
                break
            rows = np.array([row_of[t] for t in ids])
            flip = rng.random(len(ids)) < mirror if mirror else None
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                tokens = encoder.encode(**batch_inputs(train_features, ids, True, flip))
            losses = task_losses(tokens, train_targets, rows, flip)
            loss = sum(losses.values()) / len(losses)  # every task counts the same
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, 1.0)
            optimiser.step()
            schedule.step()
            running, count, step = running + float(loss.detach()), count + 1, step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{running / count:.3f}")
        entry: dict[str, Any] = {"epoch": epoch, "step": step, "train_loss": running / max(1, count)}
        if has_validation:
            entry["validation_loss"], entry["validation_scores"], entry["validation_errors"] = evaluate(
                validation_features, validation_targets)
            scores = list(entry["validation_scores"].values())
            key = (float(np.mean(scores)) if scores else 0.0, -entry["validation_loss"])
            if key > best_key:
                best_key, best_epoch, best_errors = key, epoch, entry["validation_errors"]
                best_state = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
                best_heads = {k: v.detach().clone() for k, v in heads.state_dict().items()}
        curve.append(entry)
        logger.info("motion encoder epoch %d: %s", epoch, entry)
    bar.close()
    if best_state is not None:
        encoder.load_state_dict(best_state)
        heads.load_state_dict(best_heads)
    calibration = readout_calibration(train_targets, value_stats, best_errors)
    summary = {"curve": curve, "selected_epoch": best_epoch or epoch, "steps": step,
               "seconds": round(time.perf_counter() - started, 1), "trials": len(trials),
               "readout_calibration": calibration}
    if report_features is not None and report_targets is not None:
        summary["report_loss"], summary["report_scores"], summary["report_errors"] = evaluate(
            report_features, report_targets)
        if not getattr(encoder, "descriptor_size", 0):
            _, summary["report_scores_both_views"], _ = evaluate(report_features, report_targets, both_views=True)
    encoder.eval()
    return summary


def readout_calibration(train_targets: EncoderTargets, value_stats: dict[str, tuple[float, float]],
                        errors: dict[str, float] | None = None) -> dict:
    """What an answer needs to read the trained heads (see `BiomechGPTConfig.readout_answer_weight`).

    Args:
        train_targets ([`EncoderTargets`]): the training targets (their label order is the heads' output order).
        value_stats (`dict`): numeric task -> `(mean, std)` the heads were trained to predict standardised by.
        errors (`dict`, *optional*): numeric task -> the head's root-mean-square error on held-out trials (the
            selected epoch's `validation_errors`). A task without one gets the training spread: wide, so the head
            counts little.

    Returns:
        `{"labels": {closed task: labels in output order}, "scales": {numeric task: [mean, std, error]}}`.

    Closed-set heads are not temperature-scaled: fitting each head's temperature to the validation likelihood softened
    the fall-history head (1.54) and cost fused answers 6 points of macro-F1 on the default run's test split (0.543 ->
    0.485) without a gain elsewhere."""
    errors = errors or {}
    return {"labels": {task: list(classes) for task, classes in train_targets.classes.items()},
            "scales": {task: [mu, sigma, max(float(errors.get(task, sigma)), 1e-6)]
                       for task, (mu, sigma) in value_stats.items()}}


def mirror_label_order(classes: list[str]) -> list[int]:
    """For each label, the index of its mirror image's label: "left" and "right" swap, every other label is its own
    (the identity for a task without both sides)."""
    image = {"left": "right", "right": "left"} if "left" in classes and "right" in classes else {}
    return [classes.index(image.get(c, c)) for c in classes]


def _mirrored_labels(targets: EncoderTargets) -> dict[str, np.ndarray]:
    """Closed-set task with both a "left" and a "right" label -> the class index of each class's mirror image (an
    index array whose last entry maps a missing label, -1, to itself)."""
    return {task: np.asarray(mirror_label_order(classes) + [-1], dtype=np.int64)
            for task, classes in targets.classes.items() if "left" in classes and "right" in classes}


def _task_heads(encoder: Any, targets: EncoderTargets):
    """One linear head per task on the flattened query tokens: the encoder's own readout heads where it has them
    (they stay in the model and feed its readout tokens), else fresh heads that are dropped after this stage."""
    from torch import nn

    sizes = {**{task: len(classes) for task, classes in targets.classes.items()},
             **dict.fromkeys(targets.values, 1)}
    readout = dict(zip(getattr(encoder, "readout_tasks", ()), getattr(encoder, "readout_heads", ())))
    if readout:
        wrong = {task: (head.out_features, sizes.get(task)) for task, head in readout.items()
                 if sizes.get(task) != head.out_features}
        if wrong:
            raise ValueError(f"readout heads do not fit the targets (outputs, classes): {wrong}")
        return nn.ModuleDict(readout)
    width = encoder.num_queries * encoder.norm.normalized_shape[0]
    return nn.ModuleDict({task: nn.Linear(width, size) for task, size in sizes.items()})


def _length_grouped_batches(trials: list[str], lengths: dict[str, int], batch_size: int, generator) -> list[list[str]]:
    """Batches of trials of similar length, in random order: a random permutation is cut into groups of 16
    batches, each group sorted by length before it is cut into batches (padding to the longest in a batch of random
    lengths would cost about twice the frames)."""
    import torch

    order = [trials[k] for k in torch.randperm(len(trials), generator=generator).tolist()]
    group = batch_size * 16
    batches = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start:start + group], key=lambda t: lengths[t])
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]


def _macro_f1(y: np.ndarray, p: np.ndarray) -> float:
    scores = []
    for label in np.unique(y):
        tp = float(np.sum((p == label) & (y == label)))
        precision = tp / max(1.0, float(np.sum(p == label)))
        recall = tp / max(1.0, float(np.sum(y == label)))
        scores.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    return float(np.mean(scores))


def _pearson(y: np.ndarray, p: np.ndarray) -> float:
    if len(y) < 2 or np.std(y) == 0 or np.std(p) == 0:
        return 0.0
    return float(np.corrcoef(y, p)[0, 1])
