"""The non-language-model baseline BiomechGPT is compared against.

Per task, two families are trained on the same training split and the same motion as the language model:

- `"gbt"`: gradient-boosted trees (scikit-learn's `HistGradientBoosting*`) on standard gait features computed from
  the canonical `Motion` (`gait_features`): cadence from gait events, spectrum and autocorrelation, walking speed
  from pelvis displacement, step-time and range-of-motion asymmetry, joint ranges of motion, per-coordinate
  statistics, duration.
- `"cnn"`: a small temporal convolutional network on the normalised motion (joint angles, pelvis height, horizontal
  pelvis speed), with the trial duration as an extra input.

`NonLLMBaseline.fit` trains both families for every task and picks the better one per task on the validation rows
(never on the test rows); `predict` answers with the chosen family or a named one. The whole thing is sized to
train in about a minute on 2 CPU cores for the default cohort.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from biomechgpt.metrics import HEADLINE_METRIC, METRICS_BY_TASK, compute_task_metrics
from biomechgpt.processing.motion import CANONICAL_COORDINATES, CANONICAL_FRAME_RATE, Motion
from biomechgpt.processing.motion_descriptors import check_canonical, descriptor_names, motion_descriptors

# The baseline's names for the descriptors (kept for callers of the baseline module).
gait_features = motion_descriptors
feature_names = descriptor_names

__all__ = ["BaselineSettings", "NonLLMBaseline", "gait_features", "feature_names", "BASELINE_FAMILIES"]

BASELINE_FAMILIES: tuple[str, ...] = ("gbt", "cnn")

_INDEX = {name: i for i, name in enumerate(CANONICAL_COORDINATES)}
_TRANSLATIONS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")
_ANGLES = tuple(c for c in CANONICAL_COORDINATES if c not in _TRANSLATIONS)


@dataclass
class BaselineSettings:
    """How the baseline trains.

    Args:
        families (`tuple[str, ...]`, defaults to `("gbt", "cnn")`): which model families to train.
        gbt_max_iter (`int`, defaults to 100): boosting iterations per task (fewer when early stopping on a 10%
            hold-out of the training rows stops it; only with at least 200 training rows).
        gbt_learning_rate (`float`, defaults to 0.1): boosting learning rate.
        gbt_max_leaf_nodes (`int`, defaults to 15): leaves per tree.
        gbt_max_bins (`int`, defaults to 63): histogram bins per feature.
        cnn_steps (`int`, defaults to 100): optimiser steps per task for the temporal CNN.
        cnn_batch_size (`int`, defaults to 32): CNN batch size.
        cnn_crop_frames (`int`, defaults to 128): length of the random crops the CNN trains on (4.3 s at 30 Hz);
            prediction averages over `cnn_eval_crops` evenly spaced crops.
        cnn_eval_crops (`int`, defaults to 3): crops averaged at prediction time.
        cnn_channels (`int`, defaults to 32): CNN width.
        cnn_learning_rate (`float`, defaults to 3e-3): Adam learning rate.
        seed (`int`, defaults to 0): seed of every random choice; same seed, same predictions.
    """

    families: tuple[str, ...] = BASELINE_FAMILIES
    gbt_max_iter: int = 100
    gbt_learning_rate: float = 0.1
    gbt_max_leaf_nodes: int = 15
    gbt_max_bins: int = 63
    cnn_steps: int = 100
    cnn_batch_size: int = 32
    cnn_crop_frames: int = 128
    cnn_eval_crops: int = 3
    cnn_channels: int = 32
    cnn_learning_rate: float = 3e-3
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.families) - set(BASELINE_FAMILIES)
        if not self.families or unknown:
            raise ValueError(f"families must be a non-empty subset of {BASELINE_FAMILIES}, got {self.families}")
        for name in ("gbt_max_iter", "cnn_steps", "cnn_batch_size", "cnn_crop_frames", "cnn_eval_crops"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @classmethod
    def quick(cls, seed: int = 0) -> BaselineSettings:
        """A few seconds per task: for tests and `--quick` runs."""
        return cls(gbt_max_iter=50, cnn_steps=40, cnn_batch_size=32, cnn_channels=24, seed=seed)


# ----------------------------------------------------------------------------------------------------------------
# Gait features


# ----------------------------------------------------------------------------------------------------------------
# Temporal CNN input


def _cnn_input(motion: Motion) -> np.ndarray:
    """(channels, frames) float32: joint angles, pelvis height about its median and horizontal pelvis speed."""
    v = motion.values
    angles = v[:, [_INDEX[c] for c in _ANGLES]]
    height = v[:, _INDEX["pelvis_ty"]] - np.median(v[:, _INDEX["pelvis_ty"]])
    horizontal = v[:, [_INDEX["pelvis_tx"], _INDEX["pelvis_tz"]]]
    speed = np.linalg.norm(np.diff(horizontal, axis=0, prepend=horizontal[:1]), axis=1) * motion.frame_rate
    return np.concatenate([angles, height[:, None], speed[:, None]], axis=1).T.astype(np.float32)


def _crop(x: np.ndarray, start: int, length: int) -> tuple[np.ndarray, int]:
    frames = x.shape[1]
    if frames >= length:
        return x[:, start : start + length], length
    out = np.zeros((x.shape[0], length), dtype=np.float32)
    out[:, :frames] = x
    return out, frames


def _build_cnn(in_channels: int, width: int, n_out: int):
    import torch
    from torch import nn

    class TemporalCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleList(
                [
                    nn.Conv1d(in_channels, width, 7, padding=3),
                    nn.Conv1d(width, width, 5, stride=2, padding=2),
                    nn.Conv1d(width, width, 5, stride=2, padding=2),
                ]
            )
            self.head = nn.Sequential(nn.Linear(2 * width + 1, width), nn.GELU(), nn.Linear(width, n_out))

        def forward(self, x, lengths, log_duration):  # x: (batch, channels, frames)
            valid = torch.arange(x.shape[-1])[None, :] < lengths[:, None]  # (batch, frames)
            for conv in self.convs:
                x = nn.functional.gelu(conv(x))
                valid = valid[:, :: conv.stride[0]][:, : x.shape[-1]]
            weights = valid.unsqueeze(1).float()  # (batch, 1, frames)
            mean = (x * weights).sum(-1) / weights.sum(-1).clamp(min=1.0)
            peak = x.masked_fill(~valid.unsqueeze(1), -1e4).amax(-1)
            return self.head(torch.cat([mean, peak, log_duration[:, None]], dim=1))

    return TemporalCNN()


# ----------------------------------------------------------------------------------------------------------------
# The baseline


@dataclass
class _TaskModel:
    kind: str  # "classification" or "regression"
    classes: list[str] = field(default_factory=list)
    models: dict[str, object] = field(default_factory=dict)
    target_scale: tuple[float, float] = (0.0, 1.0)  # regression targets are standardised for the CNN
    validation: dict[str, float | None] = field(default_factory=dict)
    selected: str = ""


class NonLLMBaseline:
    """Per-task gradient-boosted trees and temporal CNNs on the motion, without a language model.

    Args:
        settings (`BaselineSettings`, *optional*): training settings.

    Example::

        baseline = NonLLMBaseline().fit(train_examples, cohort.motion, validation_examples)
        labels, confidences = baseline.predict("activity", [motion])
    """

    def __init__(self, settings: BaselineSettings | None = None) -> None:
        self.settings = settings or BaselineSettings()
        self.tasks: dict[str, _TaskModel] = {}
        self.fit_seconds: dict[str, float] = {}
        self._features: dict[str, np.ndarray] = {}
        self._sequences: dict[str, np.ndarray] = {}
        self._channel_stats: tuple[np.ndarray, np.ndarray] | None = None

    # -- inputs, cached per trial so the tasks share the work
    def _feature_matrix(self, trial_ids: Sequence[str], motion_for: Callable[[str], Motion]) -> np.ndarray:
        for trial_id in trial_ids:
            if trial_id not in self._features:
                self._features[trial_id] = gait_features(motion_for(trial_id))
        return np.stack([self._features[t] for t in trial_ids])

    def _sequence_list(self, trial_ids: Sequence[str], motion_for: Callable[[str], Motion]) -> list[np.ndarray]:
        for trial_id in trial_ids:
            if trial_id not in self._sequences:
                motion = motion_for(trial_id)
                check_canonical(motion, "the baseline's features")
                self._sequences[trial_id] = _cnn_input(motion)
        return [self._sequences[t] for t in trial_ids]

    def fit(
        self,
        train: dict[str, tuple[Sequence[str], Sequence]],
        motion_for: Callable[[str], Motion],
        validation: dict[str, tuple[Sequence[str], Sequence]] | None = None,
    ) -> NonLLMBaseline:
        """Trains every family for every task and picks the better family per task.

        Args:
            train (`dict[str, tuple[list[str], list]]`): task -> (trial ids, targets); targets are labels for
                classification tasks and numbers for numeric ones (see `biomechgpt.metrics.METRICS_BY_TASK`).
            motion_for (`Callable[[str], Motion]`): the canonical motion of a trial id (e.g. `cohort.motion`).
            validation (`dict`, *optional*): the same for the validation split; the family with the better headline
                metric there is selected. Without it the first family in `settings.families` is selected.
        """
        for task, (trial_ids, targets) in train.items():
            kind = METRICS_BY_TASK.get(task)
            if kind not in ("classification", "regression"):
                raise ValueError(f"baseline handles classification and numeric tasks, not {task!r}")
            if len(trial_ids) != len(targets) or not len(trial_ids):
                raise ValueError(f"{task}: need the same non-zero number of trial ids and targets")
        if "cnn" in self.settings.families:
            every = sorted({t for ids, _ in train.values() for t in ids})
            sample = np.concatenate(self._sequence_list(every, motion_for), axis=1)
            self._channel_stats = (sample.mean(axis=1, keepdims=True), sample.std(axis=1, keepdims=True) + 1e-3)
        for task, (trial_ids, targets) in train.items():
            start = time.perf_counter()
            model = _TaskModel(kind=METRICS_BY_TASK[task])
            if model.kind == "classification":
                model.classes = sorted({str(t) for t in targets})
                y = np.array([model.classes.index(str(t)) for t in targets])
            else:
                y = np.asarray(targets, dtype=np.float64)
                model.target_scale = (float(y.mean()), float(y.std()) or 1.0)
            self.tasks[task] = model
            for family in self.settings.families:
                if family == "gbt":
                    model.models["gbt"] = self._fit_gbt(model, self._feature_matrix(list(trial_ids), motion_for), y)
                else:
                    model.models["cnn"] = self._fit_cnn(model, self._sequence_list(list(trial_ids), motion_for), y,
                                                        seed=self.settings.seed + _stable_hash(task))
            model.selected = self.settings.families[0]
            if validation and task in validation and len(self.settings.families) > 1:
                val_ids, val_targets = validation[task]
                headline = HEADLINE_METRIC[model.kind]
                for family in self.settings.families:
                    preds, conf = self._predict_ids(task, list(val_ids), motion_for, family)
                    model.validation[family] = compute_task_metrics(task, preds, list(val_targets), conf)[headline]
                scored = {k: s for k, s in model.validation.items() if s is not None}
                if scored:
                    model.selected = max(scored, key=lambda k: (scored[k], -self.settings.families.index(k)))
            self.fit_seconds[task] = time.perf_counter() - start
        return self

    def _fit_gbt(self, model: _TaskModel, x: np.ndarray, y: np.ndarray):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        s = self.settings
        # scikit-learn's default of 20 samples per leaf cannot split the small per-participant tasks of a quick run
        common = dict(max_iter=s.gbt_max_iter, learning_rate=s.gbt_learning_rate, max_leaf_nodes=s.gbt_max_leaf_nodes,
                      max_bins=s.gbt_max_bins, min_samples_leaf=int(np.clip(len(y) // 20, 3, 20)),
                      early_stopping=len(y) >= 200, n_iter_no_change=10, validation_fraction=0.1,
                      random_state=s.seed)
        if model.kind == "classification" and len(model.classes) == 1:
            return None  # one class seen in training: predict it
        estimator = HistGradientBoostingClassifier if model.kind == "classification" else HistGradientBoostingRegressor
        with _single_thread():
            return estimator(**common).fit(x, y)

    def _fit_cnn(self, model: _TaskModel, sequences: list[np.ndarray], y: np.ndarray, seed: int):
        import torch

        s = self.settings
        if model.kind == "classification" and len(model.classes) == 1:
            return None
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        n_out = len(model.classes) if model.kind == "classification" else 1
        net = _build_cnn(sequences[0].shape[0], s.cnn_channels, n_out)
        optimiser = torch.optim.AdamW(net.parameters(), lr=s.cnn_learning_rate, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, s.cnn_learning_rate, total_steps=s.cnn_steps)
        mean, scale = model.target_scale
        target = torch.tensor(y if model.kind == "classification" else (y - mean) / scale)
        net.train()
        with torch.enable_grad(), _torch_threads(1):  # callers may evaluate under no_grad
            self._train_steps(net, optimiser, schedule, model, sequences, target, rng)
        net.eval()
        return net

    def _train_steps(self, net, optimiser, schedule, model, sequences, target, rng) -> None:
        import torch

        s = self.settings
        for _ in range(s.cnn_steps):
            batch = rng.integers(0, len(sequences), size=min(s.cnn_batch_size, len(sequences)))
            starts = [int(rng.integers(0, max(1, sequences[i].shape[1] - s.cnn_crop_frames + 1))) for i in batch]
            x, lengths, log_duration = self._cnn_batch([sequences[i] for i in batch], starts)
            out = net(x, lengths, log_duration)
            if model.kind == "classification":
                loss = torch.nn.functional.cross_entropy(out, target[batch].long())
            else:
                loss = torch.nn.functional.smooth_l1_loss(out[:, 0], target[batch].float())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()

    def _cnn_batch(self, sequences: list[np.ndarray], starts: list[int]):
        import torch

        mean, std = self._channel_stats
        crops, lengths = zip(*(_crop((seq - mean) / std, st, self.settings.cnn_crop_frames)
                               for seq, st in zip(sequences, starts)))
        log_duration = [math.log(seq.shape[1] / CANONICAL_FRAME_RATE) for seq in sequences]
        return (torch.from_numpy(np.stack(crops)), torch.tensor(lengths),
                torch.tensor(log_duration, dtype=torch.float32))

    # -- prediction
    def _predict_ids(self, task, trial_ids, motion_for, family):
        if family == "gbt":
            return self._predict_gbt(task, self._feature_matrix(trial_ids, motion_for))
        return self._predict_cnn(task, self._sequence_list(trial_ids, motion_for))

    def _predict_gbt(self, task: str, x: np.ndarray):
        model = self.tasks[task]
        gbt = model.models["gbt"]
        if gbt is None:
            return [model.classes[0]] * len(x), [1.0] * len(x)
        with _single_thread():
            if model.kind == "regression":
                return [float(p) for p in gbt.predict(x)], None
            proba = gbt.predict_proba(x)
        return [model.classes[int(gbt.classes_[k])] for k in proba.argmax(1)], [float(p) for p in proba.max(1)]

    def _predict_cnn(self, task: str, sequences: list[np.ndarray]):
        import torch

        model = self.tasks[task]
        net = model.models["cnn"]
        if net is None:
            return [model.classes[0]] * len(sequences), [1.0] * len(sequences)
        length = self.settings.cnn_crop_frames
        outputs = []
        with torch.no_grad(), _torch_threads(1):
            for k in range(self.settings.cnn_eval_crops):
                starts = [int(round(max(0, seq.shape[1] - length) * (k + 0.5) / self.settings.cnn_eval_crops))
                          for seq in sequences]
                out = []
                for b in range(0, len(sequences), 256):
                    out.append(net(*self._cnn_batch(sequences[b : b + 256], starts[b : b + 256])))
                out = torch.cat(out)
                outputs.append(out.softmax(-1) if model.kind == "classification" else out[:, 0])
        mean_out = torch.stack(outputs).mean(0).numpy()
        if model.kind == "regression":
            mean, scale = model.target_scale
            return [float(p * scale + mean) for p in mean_out], None
        return [model.classes[k] for k in mean_out.argmax(1)], [float(p) for p in mean_out.max(1)]

    def predict(self, task: str, motions: Sequence[Motion], family: str | None = None):
        """Answers `task` for each canonical motion.

        Returns:
            `(predictions, confidences)`: labels (classification) or numbers (numeric tasks), and the predicted
            class probability for classification tasks (`None` for numeric ones).
        """
        if task not in self.tasks:
            raise ValueError(f"baseline was not trained for task {task!r}")
        family = family or self.tasks[task].selected
        if family not in self.tasks[task].models:
            raise ValueError(f"baseline family {family!r} was not trained (trained: {list(self.tasks[task].models)})")
        for motion in motions:
            check_canonical(motion, "the baseline's features")
        if family == "gbt":
            return self._predict_gbt(task, np.stack([gait_features(m) for m in motions]))
        return self._predict_cnn(task, [_cnn_input(m) for m in motions])

    def predict_trials(self, task: str, trial_ids: Sequence[str], motion_for: Callable[[str], Motion],
                       family: str | None = None):
        """`predict` for trial ids, reusing the per-trial inputs cached while fitting."""
        if task not in self.tasks:
            raise ValueError(f"baseline was not trained for task {task!r}")
        return self._predict_ids(task, list(trial_ids), motion_for, family or self.tasks[task].selected)

    def summary(self) -> dict:
        """Per task: the selected family, validation headline metric per family, fit seconds."""
        return {
            task: {"selected": m.selected, "validation": dict(m.validation),
                   "fit_s": round(self.fit_seconds.get(task, 0.0), 3)}
            for task, m in self.tasks.items()
        }


def _single_thread():
    """scikit-learn's OpenMP threads spin-wait; on a shared 2-core machine that made one small fit 60x slower
    (26 s instead of 0.4 s, measured), so the trees train on one thread."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="openmp")


@contextlib.contextmanager
def _torch_threads(n: int):
    """The CNN is small: on a busy 2-core machine two intra-op threads made 100 steps take 28-45 s against 1-2 s
    on one thread (measured), so it trains on one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stable_hash(text: str) -> int:
    # Python's hash() is salted per process; seeds must not be
    return sum((i + 1) * ord(c) for i, c in enumerate(text)) % 10_000
