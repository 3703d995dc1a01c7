"""`MotionTokenizer`: the user-facing object that turns motions into discrete motion codes and back.

It bundles the stateless `MotionFeatureExtractor` with the weights of `MotionTokenizerModel`, and saves / loads /
pushes them together (safetensors only), like an audio codec next to its feature extractor.

Example:

```python
>>> from biomechgpt import MotionTokenizer, load_motion
>>> tok = MotionTokenizer.from_pretrained("runs/motion_tokenizer")
>>> batch = tok([load_motion("walk.mot"), "run.mot"])  # {"motion_codes", "motion_codes_mask", ...}
>>> codes = tok.encode(load_motion("walk.mot"))         # list[int], one code per 4 frames
>>> motion = tok.decode(codes)                          # canonical Motion, start position and heading 0
```
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature
from transformers.utils import PushToHubMixin

from .configuration_motion_tokenizer import MotionTokenizerConfig
from .feature_extraction_motion import MotionFeatureExtractor
from .modeling_motion_tokenizer import MotionTokenizerModel
from .motion import ANGLE_GROUPS, Motion, MotionInputError

__all__ = ["MotionTokenizer", "MotionDistributionCheck", "register_auto_classes", "METRICS_NAME"]

METRICS_NAME = "metrics.json"

# How a warning names each angle group, and the columns a user can leave out of the file instead.
_GROUP_WORDS = {"pelvis_legs": "pelvis and leg angles", "arms": "arm angles", "lumbar": "trunk (lumbar) angles"}
_GROUP_COLUMNS = {"arms": "arm", "lumbar": "lumbar"}


@dataclass
class MotionDistributionCheck:
    r"""
    How a recording's encode -> decode error compares with the training data's, per angle group (see
    [`MotionTokenizer.check_motion`]).

    Args:
        errors_deg (`dict[str, float | None]`): per group of `ANGLE_GROUPS`, the recording's mean absolute
            reconstruction error in degrees; `None` where it recorded none of the group's angles.
        limits_deg (`dict[str, float]`): the tokenizer's `reconstruction_error_limits`.
        percentile (`float`): the percentile of the training error the limits hold.
        factor (`float`): how many times its limit an error may reach before the group counts as out of range.
        out_of_range (`list[str]`): the groups beyond `factor * limit`, furthest beyond it first.
    """

    errors_deg: dict[str, float | None]
    limits_deg: dict[str, float]
    percentile: float
    factor: float
    out_of_range: list[str]

    @property
    def in_distribution(self) -> bool:
        return not self.out_of_range

    @property
    def warning(self) -> str | None:
        """One sentence for the user when the recording is unlike the training data, else `None`."""
        if not self.out_of_range:
            return None
        parts = []
        for k, group in enumerate(self.out_of_range):
            error, limit = _degrees(self.errors_deg[group]), _degrees(self.limits_deg[group])
            what = f"reconstruction error {error} vs {_ordinal(self.percentile)} percentile {limit}" if k == 0 else (
                f"{error} vs {limit}")
            parts.append(f"{_GROUP_WORDS[group]} ({what})")
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        text = f"This recording is unlike the training data in its {listed}: answers may be unreliable"
        columns = [_GROUP_COLUMNS[g] for g in self.out_of_range if g in _GROUP_COLUMNS]
        if columns:
            text += f"; try without the {' and '.join(columns)} columns"
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "warning": self.warning}


def _degrees(value: float) -> str:
    return f"{value:.0f}°" if value >= 10 else f"{value:.1f}°"


def _ordinal(value: float) -> str:
    if value != int(value):
        return f"{value:g}th"
    n = int(value)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class MotionTokenizer(PushToHubMixin):
    r"""
    Turns canonical motions into motion codes (one per `downsample_factor` frames) and codes back into motions.

    Args:
        model ([`MotionTokenizerModel`]): the VQ-VAE weights and normalisation statistics.
        feature_extractor ([`MotionFeatureExtractor`], *optional*): defaults to the one matching `model.config`.
        metrics (`dict`, *optional*): training / benchmark numbers, saved as `metrics.json` next to the weights.
        batch_size (`int`, *optional*, defaults to 64): motions encoded per forward pass in `__call__`.
    """

    def __init__(
        self,
        model: MotionTokenizerModel,
        feature_extractor: MotionFeatureExtractor | None = None,
        metrics: dict | None = None,
        batch_size: int = 64,
    ) -> None:
        self.model = model.eval()
        self.feature_extractor = feature_extractor or MotionFeatureExtractor.from_config(model.config)
        self.metrics = dict(metrics or {})
        self.batch_size = int(batch_size)

    # ----------------------------------------------------------------------------------------------------------
    # properties

    @property
    def config(self) -> MotionTokenizerConfig:
        return self.model.config

    @property
    def codebook_size(self) -> int:
        """Number of distinct motion codes."""
        return self.model.config.codebook_size

    @property
    def codebook(self) -> torch.Tensor:
        """The code vectors, `(codebook_size, codebook_dim)`, e.g. to initialise a language model's code rows."""
        return self.model.quantizer.codebook.detach()

    @property
    def downsample_factor(self) -> int:
        """Canonical frames per motion code."""
        return self.model.config.downsample_factor

    @property
    def frame_rate(self) -> float:
        return self.model.config.frame_rate

    @property
    def device(self) -> torch.device:
        return self.model.feature_mean.device

    def to(self, device: str | torch.device) -> MotionTokenizer:
        self.model.to(device)
        return self

    # ----------------------------------------------------------------------------------------------------------
    # save / load

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> MotionTokenizer:
        """Load a tokenizer folder (or Hub repository) written by `save_pretrained`.

        Keyword arguments (`subfolder`, `revision`, `token`, `cache_dir`, `local_files_only`, ...) go to
        `MotionTokenizerModel.from_pretrained` and `MotionFeatureExtractor.from_pretrained`.
        """
        model = MotionTokenizerModel.from_pretrained(pretrained_model_name_or_path, **kwargs)
        hub_kwargs = {
            k: v
            for k, v in kwargs.items()
            if k in ("subfolder", "revision", "token", "cache_dir", "local_files_only", "force_download")
        }
        feature_extractor = MotionFeatureExtractor.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        metrics = {}
        local = Path(pretrained_model_name_or_path) / kwargs.get("subfolder", "") / METRICS_NAME
        if local.is_file():
            metrics = json.loads(local.read_text())
        return cls(model, feature_extractor, metrics=metrics)

    def save_pretrained(
        self, save_directory: str | os.PathLike, push_to_hub: bool = False, include_code: bool = True, **kwargs: Any
    ) -> None:
        """Write `config.json`, `model.safetensors`, `preprocessor_config.json` and `metrics.json`.

        With `include_code` (default) the model's source files are copied next to the weights and `auto_map`
        entries are added, so `AutoModel` / `AutoFeatureExtractor.from_pretrained(..., trust_remote_code=True)`
        load the folder even where biomechgpt is not installed. With biomechgpt imported, the installed classes
        are used and no remote code runs.
        """
        if push_to_hub:
            raise ValueError("call push_to_hub(repo_id) instead of save_pretrained(..., push_to_hub=True)")
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        kwargs.pop("safe_serialization", None)  # safetensors is the only format we write
        self.model.save_pretrained(save_directory, **kwargs)
        self.feature_extractor.save_pretrained(save_directory)
        if include_code:
            _write_remote_code(save_directory)
        if self.metrics:
            (save_directory / METRICS_NAME).write_text(json.dumps(self.metrics, indent=2, sort_keys=True) + "\n")

    # ----------------------------------------------------------------------------------------------------------
    # encoding

    def __call__(self, motions: Any, return_tensors: str = "pt") -> BatchFeature:
        """Encode one motion (a `Motion`, a file path, or a float array `(frames, coordinates)`) or a list of them.

        Returns:
            `BatchFeature` with `motion_codes` (int64, `(batch, codes)`, 0 as padding), `motion_codes_mask` (bool,
            `(batch, codes)`), `motion_codes_lengths` (int64, `(batch,)`: `ceil(frames / downsample_factor)`) and
            `motion_lengths` (int64, `(batch,)`: frames of each input).

        Raises:
            `MotionInputError`: bad input (unknown coordinates, wrong frame rate, NaN, too short, empty batch, ...).
        """
        items = MotionFeatureExtractor._as_list(motions)
        if isinstance(motions, (list, tuple)):
            names = [f"motion {i}" for i in range(len(items))]
        else:
            names = ["motion"]
        valid = [self.feature_extractor.as_motion(item, name) for item, name in zip(items, names)]
        # sort by length so each forward pass pads little; results go back in input order
        order = sorted(range(len(valid)), key=lambda i: valid[i].n_frames)
        codes_per_item: list[torch.Tensor] = [None] * len(valid)  # type: ignore[list-item]
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                features = self.feature_extractor([valid[i] for i in chunk], return_tensors="pt")
                out = self.model.encode(
                    features["motion_values"].to(self.device),
                    features["motion_mask"].to(self.device),
                    features["coordinate_mask"].to(self.device),
                )
                for row, i in enumerate(chunk):
                    codes_per_item[i] = out.motion_codes[row, : int(out.motion_codes_mask[row].sum())].cpu()
        lengths = torch.tensor([c.numel() for c in codes_per_item], dtype=torch.long)
        width = int(lengths.max())
        codes = torch.zeros(len(valid), width, dtype=torch.long)
        mask = torch.zeros(len(valid), width, dtype=torch.bool)
        for row, c in enumerate(codes_per_item):
            codes[row, : c.numel()] = c
            mask[row, : c.numel()] = True
        data = {
            "motion_codes": codes,
            "motion_codes_mask": mask,
            "motion_codes_lengths": lengths,
            "motion_lengths": torch.tensor([m.n_frames for m in valid], dtype=torch.long),
        }
        batch = BatchFeature(data=data, tensor_type="pt")
        if return_tensors == "np":
            return BatchFeature(data={k: v.numpy() for k, v in data.items()})
        if return_tensors != "pt":
            raise ValueError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
        return batch

    def encode(self, motion: Any) -> list[int]:
        """Codes of one motion, `ceil(frames / downsample_factor)` of them."""
        if isinstance(motion, (list, tuple)):
            raise MotionInputError("motion: encode takes one motion; call the tokenizer on a list for a batch")
        out = self(motion)
        return out["motion_codes"][0, : int(out["motion_codes_lengths"][0])].tolist()

    # ----------------------------------------------------------------------------------------------------------
    # decoding

    def _check_codes(self, codes: Any, name: str = "codes") -> torch.Tensor:
        if isinstance(codes, torch.Tensor):
            tensor = codes.detach().cpu()
        else:
            array = np.asarray(codes)
            if array.dtype == object:
                raise MotionInputError(f"{name}: expected a sequence of integer codes")
            tensor = torch.from_numpy(array.copy())
        if tensor.dim() != 1:
            raise MotionInputError(f"{name}: expected a 1-D sequence of codes, got shape {tuple(tensor.shape)}")
        if tensor.numel() == 0:
            raise MotionInputError(f"{name}: no codes to decode")
        if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
            raise MotionInputError(f"{name}: codes must be integers, got {tensor.dtype}")
        tensor = tensor.long()
        low, high = int(tensor.min()), int(tensor.max())
        if low < 0 or high >= self.codebook_size:
            bad = low if low < 0 else high
            raise MotionInputError(f"{name}: code {bad} outside the codebook [0, {self.codebook_size})")
        return tensor

    def decode(self, codes: Any, n_frames: int | None = None) -> Motion:
        """Codes -> a canonical `Motion` of `len(codes) * downsample_factor` frames (or the first `n_frames`).

        Pelvis position and heading start at 0 (the codes are invariant to them). Every coordinate is decoded,
        including those a source recording lacked, so the mask is all True.
        """
        return self.batch_decode([codes], n_frames=None if n_frames is None else [n_frames])[0]

    def batch_decode(self, codes: Any, n_frames: list[int] | None = None) -> list[Motion]:
        """Decode several code sequences (a list of sequences, or a `(batch, codes)` tensor with
        `motion_codes_mask` rows given as the `motion_codes_lengths` of `__call__`)."""
        if isinstance(codes, (torch.Tensor, np.ndarray)) and codes.ndim == 2:
            codes = list(codes)
        if not isinstance(codes, (list, tuple)) or len(codes) == 0:
            raise MotionInputError("codes: expected a non-empty list of code sequences")
        seqs = [self._check_codes(c, name=f"codes {i}" if len(codes) > 1 else "codes") for i, c in enumerate(codes)]
        if n_frames is not None and len(n_frames) != len(seqs):
            raise MotionInputError(f"n_frames: {len(n_frames)} lengths for {len(seqs)} code sequences")
        width = max(s.numel() for s in seqs)
        padded = torch.zeros(len(seqs), width, dtype=torch.long)
        mask = torch.zeros(len(seqs), width, dtype=torch.bool)
        for row, s in enumerate(seqs):
            padded[row, : s.numel()] = s
            mask[row, : s.numel()] = True
        with torch.inference_mode():
            out = self.model.decode(padded.to(self.device), mask.to(self.device))
        values = out.motion_values.float().cpu().numpy()  # (batch, frames, coords)
        motions = []
        for row, s in enumerate(seqs):
            frames = s.numel() * self.downsample_factor
            if n_frames is not None:
                if not 1 < n_frames[row] <= frames:
                    raise MotionInputError(f"n_frames: {n_frames[row]} is not in [2, {frames}] for {s.numel()} codes")
                frames = int(n_frames[row])
            meta = {"source": "motion_tokenizer.decode", "n_codes": int(s.numel())}
            motions.append(self.feature_extractor.features_to_motion(values[row], n_frames=frames, meta=meta))
        return motions

    # ----------------------------------------------------------------------------------------------------------
    # out-of-distribution check

    def reconstruction_errors(self, motions: Any) -> list[dict[str, float | None]]:
        """Encode -> decode error of each motion per angle group of `ANGLE_GROUPS`: the mean absolute difference in
        degrees over the motion's frames and the group's recorded angles (`None` for a group it did not record).

        One forward pass of the VQ-VAE per `batch_size` motions (in eval mode the forward pass is exactly
        `decode(encode(...))`). Accepts what `__call__` accepts.
        """
        items = MotionFeatureExtractor._as_list(motions)
        names = [f"motion {i}" for i in range(len(items))] if isinstance(motions, (list, tuple)) else ["motion"]
        valid = [self.feature_extractor.as_motion(item, name) for item, name in zip(items, names)]
        coords = list(self.feature_extractor.coordinates)
        groups = {g: [coords.index(c) for c in members if c in coords] for g, members in ANGLE_GROUPS.items()}
        out: list[dict[str, float | None]] = []
        with torch.inference_mode():
            for start in range(0, len(valid), self.batch_size):
                chunk = valid[start : start + self.batch_size]
                features = self.feature_extractor(chunk, return_tensors="pt")
                decoded = self.model(
                    features["motion_values"].to(self.device),
                    features["motion_mask"].to(self.device),
                    features["coordinate_mask"].to(self.device),
                ).motion_values.float().cpu()  # (batch, frames, coords)
                error = (decoded - features["motion_values"]).abs().numpy()
                for row, motion in enumerate(chunk):
                    present = features["coordinate_mask"][row].numpy()
                    frames = error[row, : motion.n_frames]
                    errors: dict[str, float | None] = {}
                    for group, cols in groups.items():
                        cols = [c for c in cols if present[c]]
                        errors[group] = float(np.degrees(frames[:, cols].mean())) if cols else None
                    out.append(errors)
        return out

    def check_motion(self, motion: Any) -> MotionDistributionCheck | None:
        """Compare a motion's reconstruction error per angle group with the training data's.

        Returns `None` when the tokenizer stores no `reconstruction_error_limits` (trained before they existed), else
        a [`MotionDistributionCheck`] whose `warning` is a sentence for the user when the recording is unlike the
        training data: the tokenizer cannot reproduce it, so the codes (and the answers built on them) are off.
        """
        limits = getattr(self.config, "reconstruction_error_limits", None)
        if not limits:
            return None
        factor = float(getattr(self.config, "out_of_distribution_factor", 1.5))
        errors = self.reconstruction_errors(motion)[0]
        flagged = [g for g in ANGLE_GROUPS
                   if g in limits and errors.get(g) is not None and errors[g] > factor * limits[g]]
        flagged.sort(key=lambda g: -errors[g] / limits[g])
        return MotionDistributionCheck(
            errors_deg=errors, limits_deg=dict(limits),
            percentile=float(getattr(self.config, "reconstruction_error_percentile", 99.0)), factor=factor,
            out_of_range=flagged,
        )

    def reconstruct(self, motion: Any) -> Motion:
        """`decode(encode(motion))` trimmed to the input's length (what the benchmarks score)."""
        valid = self.feature_extractor.as_motion(motion)
        return self.decode(self.encode(valid), n_frames=valid.n_frames)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"MotionTokenizer(codebook_size={c.codebook_size}, downsample_factor={c.downsample_factor}, "
            f"hidden_size={c.hidden_size}, frame_rate={c.frame_rate:g})"
        )


# `PreTrainedModel.register_for_auto_class` cannot be used here: transformers writes the `auto_map` of any class
# whose name contains "Tokenizer" as a (slow, fast) tokenizer pair, which AutoConfig then fails to read.
_REMOTE_CODE = {
    "AutoConfig": "configuration_motion_tokenizer.MotionTokenizerConfig",
    "AutoModel": "modeling_motion_tokenizer.MotionTokenizerModel",
    "AutoFeatureExtractor": "feature_extraction_motion.MotionFeatureExtractor",
}
_REMOTE_FILES = (
    "configuration_motion_tokenizer.py", "modeling_motion_tokenizer.py", "feature_extraction_motion.py", "motion.py",
)  # fmt: skip


def _write_remote_code(folder: Path) -> None:
    here = Path(__file__).resolve().parent
    for name in _REMOTE_FILES:
        shutil.copyfile(here / name, folder / name)
    # only config.json: an `auto_map` in preprocessor_config.json makes AutoImageProcessor (which AutoProcessor
    # tries before AutoFeatureExtractor) ask whether to run remote code even where biomechgpt is installed
    for file_name, keys in (("config.json", _REMOTE_CODE),):
        path = folder / file_name
        data = json.loads(path.read_text())
        data["auto_map"] = {k: _REMOTE_CODE[k] for k in keys}
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def register_auto_classes() -> None:
    """Make `AutoConfig`, `AutoModel` and `AutoFeatureExtractor` (hence `AutoProcessor`'s fallback) resolve a
    "biomechgpt_motion_tokenizer" folder to our classes, without `trust_remote_code`. Idempotent."""
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

    AutoConfig.register(MotionTokenizerConfig.model_type, MotionTokenizerConfig, exist_ok=True)
    AutoModel.register(MotionTokenizerConfig, MotionTokenizerModel, exist_ok=True)
    AutoFeatureExtractor.register(MotionTokenizerConfig, MotionFeatureExtractor, exist_ok=True)
