"""Releasing a trained model (and its QA corpus) to the Hugging Face Hub: `biomechgpt push`.

A release is built in a staging folder first, exactly as it will be uploaded, then validated, then uploaded with
`huggingface_hub.HfApi.upload_folder`:

- the **model** folder: safetensors weights, `config.json` with `auto_map` and the modeling / processing code files
  (so it loads with `trust_remote_code=True` where biomechgpt is not installed), the text tokenizer,
  `processor_config.json`, the MotionTokenizer under `motion_tokenizer/`, and the model card as `README.md` with the
  evaluation's `model-index` results;
- the **dataset** folder: the Parquet shards under `data/` and the dataset card `README.md`;
- for a LoRA / QLoRA run released as an **adapter**: the PEFT adapter that training saved (`MODEL/adapter/`: the
  LoRA factors plus the trained rows of the motion vocabulary) and the **base** it applies to (the text model with
  the motion vocabulary added, before fine-tuning), each its own repository.

Validation loads the model with the Auto classes twice, once with the package and once in a fresh interpreter in
which `import biomechgpt` fails (remote code only), asks the same questions about the same motion through both and
requires the same answers: exactly where that is well defined, within a stated tolerance where float noise is
legitimate (see `ANSWER_ATOL`); the dataset must load with `datasets.load_dataset(folder)`. Nothing is uploaded
unless every check passed.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ANSWER_ATOL",
    "ANSWER_RTOL",
    "ReleaseError",
    "ReleaseFolder",
    "Release",
    "PICKLE_SUFFIXES",
    "prepare_release",
    "build_model_release",
    "build_dataset_release",
    "build_adapter_release",
    "validate_model_release",
    "validate_adapter_release",
    "validate_dataset_release",
    "upload_release",
    "push_release",
    "resolve_token",
    "list_files",
]

# Formats that unpickle on load (arbitrary code): never part of a release.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
MOTION_FOLDER = "motion_tokenizer"
# Files of a model folder that a release carries (besides the code files and the MotionTokenizer folder).
_MODEL_FILES = (
    "config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
    "processor_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt", "tokenizer.model",
    "added_tokens.json", "training_summary.json",
)
_MOTION_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "metrics.json")
_PROCESSOR_FILES = tuple(f for f in _MODEL_FILES if f not in (
    "config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json"))
_ADAPTER_MODES = ("lora", "qlora")
# How closely base + adapter must reproduce the merged weights: float32 round-off of the merge (~1e-7), plus, for a
# run saved in bfloat16 / float16, two units in the last place of that dtype (relative).
_ADAPTER_ATOL = 1e-4


class ReleaseError(ValueError):
    """A release cannot be built, validated or uploaded; the message is one line naming the thing and the problem."""


@dataclass
class ReleaseFolder:
    """One folder of a release and the Hub repository it goes to.

    Args:
        kind (`str`): "model", "adapter", "base" or "dataset".
        path (`Path`): the staged folder, exactly what is uploaded.
        repo_id (`str`): the target repository ("owner/name").
        repo_type (`str`): "model" or "dataset".
    """

    kind: str
    path: Path
    repo_id: str
    repo_type: str = "model"

    def files(self) -> list[tuple[str, int]]:
        return list_files(self.path)


@dataclass
class Release:
    """The staged folders of a release and what their validation found (`checks`: kind -> details)."""

    folders: list[ReleaseFolder]
    checks: dict[str, Any] = field(default_factory=dict)

    def folder(self, kind: str) -> ReleaseFolder:
        for f in self.folders:
            if f.kind == kind:
                return f
        raise KeyError(kind)

    def listing(self) -> str:
        """The file list with sizes, per folder (what `biomechgpt push --dry-run` prints)."""
        lines = []
        for f in self.folders:
            files = f.files()
            total = sum(size for _, size in files)
            lines.append(f"{f.kind}: {f.path} -> {f.repo_type} {f.repo_id} ({len(files)} files, {_size(total)})")
            lines += [f"  {size:>12,d}  {name}" for name, size in files]
        return "\n".join(lines)


def list_files(folder: str | os.PathLike) -> list[tuple[str, int]]:
    """`(relative path, size in bytes)` of every file under `folder`, sorted by path."""
    folder = Path(folder)
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _check_repo_id(repo_id: str, what: str) -> str:
    parts = str(repo_id).split("/")
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo_id):
        raise ReleaseError(f"{what} {repo_id!r}: expected ORG/NAME")
    return str(repo_id)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReleaseError(f"{path}: unreadable JSON ({' '.join(str(err).split())})") from None


def _refuse_pickles(folder: Path, what: str) -> None:
    """Pickle-based weights run code when loaded: refuse a folder that would ship any (checkpoints/ never ships)."""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts and rel.parts[0] == "checkpoints":
            continue
        if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES:
            raise ReleaseError(f"{what} {folder}: {rel.as_posix()} is a pickle-format file; releases are "
                               "safetensors only (re-save the model with save_pretrained)")


def _check_safetensors(folder: Path) -> None:
    from safetensors import safe_open

    for path in sorted(folder.rglob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
        except Exception as err:  # safetensors raises its own error types for truncated or foreign files
            raise ReleaseError(f"{path}: not a readable safetensors file ({' '.join(str(err).split())})") from None


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _code_files(config: dict, folder: Path) -> list[str]:
    """The code files `auto_map` names, plus the sibling modules they import (transformers copied them all)."""
    names = {p.name for p in folder.glob("*.py")}
    needed = set()
    for target in config.get("auto_map", {}).values():
        for ref in target if isinstance(target, (list, tuple)) else [target]:
            if ref:
                needed.add(ref.split("--")[-1].rsplit(".", 1)[0] + ".py")
    missing = sorted(needed - names)
    if missing:
        raise ReleaseError(f"{folder}: auto_map names {missing[0]} but the file is missing")
    return sorted(names)


# ---------------------------------------------------------------------------------------------------------------------
# model card


def _is_hub_id(name: str | None) -> bool:
    return bool(name) and "/" in str(name) and not Path(str(name)).exists() and len(str(name).split("/")) == 2


def _find_metrics(model_dir: Path, metrics: str | os.PathLike | dict | None) -> dict | None:
    """The evaluation payload: given, or `metrics.json` of the `biomechgpt run` layout (next to the model folder)."""
    if isinstance(metrics, dict):
        return metrics
    if metrics is not None:
        path = Path(metrics)
        if not path.is_file():
            raise ReleaseError(f"--metrics {path}: file not found")
        return _read_json(path)
    for candidate in (model_dir / "metrics.json", model_dir.parent / "metrics.json"):
        if candidate.is_file():
            return _read_json(candidate)
    return None


def _write_card(model_dir: Path, out: Path, *, repo_id: str, metrics: dict | None, dataset_repo_id: str | None,
                base_model: str | None, extra: str = "") -> None:
    """README.md with model-index results: rendered by the evaluation's writer from the metrics, or the model
    folder's own card (written by `biomechgpt evaluate`) with its placeholder path replaced by the repository."""
    from biomechgpt.evaluation.model_card import render_model_card

    if metrics is not None:
        if not metrics.get("tasks"):
            raise ReleaseError("metrics: no per-task results ('tasks') to put in the model card")
        kwargs: dict[str, Any] = {"model_name": repo_id.split("/")[-1], "repo_id": repo_id,
                                  "base_model": base_model if _is_hub_id(base_model) else None}
        if dataset_repo_id:
            kwargs["dataset_name"] = dataset_repo_id
        text = render_model_card(metrics, **kwargs)
    elif (model_dir / "README.md").is_file():
        text = (model_dir / "README.md").read_text().replace('"path/to/model"', f'"{repo_id}"')
    else:
        raise ReleaseError(f"{model_dir}: no evaluation results for the model card; run biomechgpt evaluate on it "
                           "or pass --metrics metrics.json")
    (out / "README.md").write_text(text.rstrip("\n") + "\n" + extra)


def _check_card(folder: Path, *, need_results: bool) -> dict:
    from huggingface_hub import ModelCard

    path = folder / "README.md"
    if not path.is_file():
        raise ReleaseError(f"{folder}: no README.md model card")
    card = ModelCard.load(path)
    results = card.data.eval_results or []
    if need_results and not results:
        raise ReleaseError(f"{path}: the model card has no model-index results (run biomechgpt evaluate, or pass "
                           "--metrics)")
    if "trust_remote_code=True" not in card.text:
        raise ReleaseError(f"{path}: the model card does not say how to load the model without the package")
    return {"results": len(results)}


# ---------------------------------------------------------------------------------------------------------------------
# building


def _load_summary(model_dir: Path) -> dict:
    path = model_dir / "training_summary.json"
    return _read_json(path) if path.is_file() else {}


def _check_model_source(model_dir: Path) -> dict:
    if not model_dir.is_dir():
        raise ReleaseError(f"--model {model_dir}: folder not found")
    if not (model_dir / "config.json").is_file():
        raise ReleaseError(f"--model {model_dir}: not a model folder (no config.json)")
    config = _read_json(model_dir / "config.json")
    if config.get("model_type") != "biomechgpt":
        raise ReleaseError(f"--model {model_dir}: config.json model_type is {config.get('model_type')!r}, "
                           "not 'biomechgpt'")
    _refuse_pickles(model_dir, "--model")
    if not (model_dir / "model.safetensors").is_file() and not (model_dir / "model.safetensors.index.json").is_file():
        raise ReleaseError(f"--model {model_dir}: no model.safetensors weights")
    if not (model_dir / "processor_config.json").is_file():
        raise ReleaseError(f"--model {model_dir}: no processor_config.json (save the processor with the model)")
    for key in ("AutoConfig", "AutoModelForCausalLM"):
        if key not in config.get("auto_map", {}):
            raise ReleaseError(f"--model {model_dir}: config.json auto_map lacks {key} (save with the package "
                               "imported so the Auto classes are registered)")
    return config


def _stage_processor(model_dir: Path, out: Path) -> None:
    """Processor, tokenizer, processing code and MotionTokenizer files."""
    processor_config = _read_json(model_dir / "processor_config.json")
    for name in _PROCESSOR_FILES:
        if (model_dir / name).is_file():
            _copy(model_dir / name, out / name)
    for name in _code_files(processor_config, model_dir):
        _copy(model_dir / name, out / name)
    motion = model_dir / MOTION_FOLDER
    if (motion / "config.json").is_file():
        for name in _MOTION_FILES:
            if (motion / name).is_file():
                _copy(motion / name, out / MOTION_FOLDER / name)


def build_model_release(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    repo_id: str,
    metrics: str | os.PathLike | dict | None = None,
    dataset_repo_id: str | None = None,
) -> Path:
    """Stage a model folder for upload as merged (or fully fine-tuned) weights.

    Args:
        model_dir (`str` or `os.PathLike`): a model folder written by `biomechgpt train` / `save_pretrained`.
        out_dir (`str` or `os.PathLike`): the staging folder to create (must not exist or be empty).
        repo_id (`str`): the target repository, used in the model card.
        metrics (`str`, `os.PathLike` or `dict`, *optional*): the evaluation's `metrics.json`; looked up in the
            model folder and next to it, else the model folder's `README.md` (from `biomechgpt evaluate`) is used.
        dataset_repo_id (`str`, *optional*): the QA corpus repository, named in the card.

    Returns:
        `Path` of the staged folder.
    """
    model_dir, out = Path(model_dir), _empty_folder(out_dir)
    config = _check_model_source(model_dir)
    for name in _MODEL_FILES:
        if (model_dir / name).is_file():
            _copy(model_dir / name, out / name)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        for shard in sorted(set(_read_json(index).get("weight_map", {}).values())):
            _copy(model_dir / shard, out / shard)
    for name in _code_files(config, model_dir):
        _copy(model_dir / name, out / name)
    _stage_processor(model_dir, out)
    summary = _load_summary(model_dir)
    _write_card(model_dir, out, repo_id=repo_id, metrics=_find_metrics(model_dir, metrics),
                dataset_repo_id=dataset_repo_id, base_model=summary.get("base_model"))
    _check_safetensors(out)
    return out


def build_dataset_release(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Stage a QA corpus folder for upload: its dataset card and the Parquet shards under `data/`."""
    dataset_dir, out = Path(dataset_dir), None
    if not dataset_dir.is_dir():
        raise ReleaseError(f"--dataset {dataset_dir}: folder not found")
    if not (dataset_dir / "README.md").is_file():
        raise ReleaseError(f"--dataset {dataset_dir}: no README.md dataset card (build it with biomechgpt "
                           "build-dataset)")
    shards = sorted((dataset_dir / "data").glob("*.parquet"))
    if not shards:
        raise ReleaseError(f"--dataset {dataset_dir}: no Parquet shards under data/")
    _refuse_pickles(dataset_dir, "--dataset")
    out = _empty_folder(out_dir)
    _copy(dataset_dir / "README.md", out / "README.md")
    for shard in shards:
        _copy(shard, out / "data" / shard.name)
    return out


def _empty_folder(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ReleaseError(f"{path}: staging folder exists and is not empty")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# adapters

ADAPTER_FOLDER = "adapter"  # where `biomechgpt train --lora/--qlora` saves the PEFT adapter as trained
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _saved_adapter(model_dir: Path) -> tuple[Path, dict]:
    """The adapter folder a LoRA / QLoRA run saved at training time and its `adapter_config.json`."""
    folder = model_dir / ADAPTER_FOLDER
    missing = [name for name in _ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise ReleaseError(f"--model {model_dir}: no adapter saved by training ({folder} lacks {', '.join(missing)}); "
                           "retrain with biomechgpt train --lora/--qlora, or release it merged")
    _refuse_pickles(folder, "--model adapter")
    config = _read_json(folder / "adapter_config.json")
    if config.get("peft_type") != "LORA":
        raise ReleaseError(f"--model {model_dir}: {folder}/adapter_config.json peft_type is "
                           f"{config.get('peft_type')!r}, not 'LORA'")
    return folder, config


def _rebuild_base(model_dir: Path, summary: dict, adapter_config: dict):
    """The model a LoRA / QLoRA run's adapter applies to: its base language model with the motion vocabulary added,
    initialised exactly as `train_model` did (same base, codebook and seed), in the dtype the run saved its weights.

    A model that reads motion frames trains its motion encoder alone first (stage 1) and then keeps it frozen, so
    the adapter does not hold it: the base takes the trained encoder from the run's merged weights."""
    import torch
    from safetensors.torch import load_file

    from biomechgpt.training.train_lm import BiomechGPTTrainingArguments, _build_model

    base_model = summary.get("base_model")
    if not base_model:
        raise ReleaseError(f"--model {model_dir}: training_summary.json does not name the base model")
    motion_tokenizer = None
    if (model_dir / MOTION_FOLDER / "config.json").is_file():
        from biomechgpt.processing.tokenization_motion import MotionTokenizer

        motion_tokenizer = MotionTokenizer.from_pretrained(model_dir / MOTION_FOLDER)
    config = _read_json(model_dir / "config.json")
    run = summary.get("arguments", {})
    # the run's own motion input and encoder shape (older configs predate the settings: codes, no statistics token)
    args = BiomechGPTTrainingArguments(
        mode="lora", seed=int(summary.get("seed", 0)), motion_input=config.get("motion_input", "codes"),
        motion_statistics_token=bool(config.get("motion_statistics_token", False)),
        **{k: run[k] for k in ("num_motion_tokens", "motion_encoder_hidden_size", "motion_encoder_layers")
           if k in run})
    # the saved config's encoder shape, readout tokens and their calibration included
    fields = {k: config[k] for k in ("num_motion_tokens", "motion_encoder_hidden_size", "motion_encoder_layers",
                                     "motion_statistics_token", "motion_readout_tasks", "motion_readout_sizes",
                                     "motion_readout_labels", "motion_readout_scales", "readout_answer_weight")
              if config.get(k) is not None}
    try:
        model, _ = _build_model(str(base_model), "lora", [], motion_tokenizer, config["codebook_size"], args,
                                {**args.motion_encoder, **fields})
    except OSError as err:
        raise ReleaseError(f"base model {base_model}: cannot be loaded to build the adapter's base "
                           f"({' '.join(str(err).split())[:200]})") from None
    if model.config.reads_features and "motion_encoder" not in (adapter_config.get("modules_to_save") or []):
        merged: dict[str, torch.Tensor] = {}
        for path in sorted(model_dir.glob("model*.safetensors")):
            merged.update(load_file(str(path)))
        encoder = {name.removeprefix("motion_encoder."): tensor for name, tensor in merged.items()
                   if name.startswith("motion_encoder.")}
        try:
            model.motion_encoder.load_state_dict(encoder)
        except RuntimeError:
            raise ReleaseError(f"--model {model_dir}: its motion encoder does not fit the base rebuilt from "
                               f"{base_model}; release it merged") from None
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32").replace("torch.", "")
    if dtype in ("bfloat16", "float16"):
        model = model.to(getattr(torch, dtype))
    return model


def build_adapter_release(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
    *,
    repo_id: str,
    base_repo_id: str,
    metrics: str | os.PathLike | dict | None = None,
    dataset_repo_id: str | None = None,
) -> tuple[Path, Path]:
    """Stage a LoRA / QLoRA run as the PEFT adapter it trained (`out_dir`, copied from `MODEL/adapter/`) plus the
    base it applies to (`base_dir`: the base language model with the motion vocabulary added, rebuilt as training
    built it).

    The adapter's `adapter_config.json` names `base_repo_id` as its base, so `from_pretrained(repo_id)` (with peft
    installed) fetches the base and applies the adapter. The adapter folder also carries the processor and the
    MotionTokenizer, so `AutoProcessor.from_pretrained(repo_id)` works. A run without a saved adapter (a full
    fine-tune, or one trained before adapters were saved) is refused.

    Returns:
        `(adapter folder, base folder)`.
    """
    import torch

    model_dir = Path(model_dir)
    _check_model_source(model_dir)
    summary = _load_summary(model_dir)
    if summary.get("mode") not in _ADAPTER_MODES:
        raise ReleaseError(f"--model {model_dir}: --adapter needs a LoRA or QLoRA run (training_summary.json mode "
                           f"is {summary.get('mode')!r}); release it merged")
    adapter, adapter_config = _saved_adapter(model_dir)
    out, base_out = _empty_folder(out_dir), _empty_folder(base_dir)
    metrics_payload = _find_metrics(model_dir, metrics)  # fail before the slow part

    base = _rebuild_base(model_dir, summary, adapter_config)
    base.config.use_cache = True
    base.save_pretrained(base_out)
    _stage_processor(model_dir, base_out)
    _write_base_card(base_out, summary, repo_id=repo_id, base_repo_id=base_repo_id)
    del base

    _copy(adapter / "adapter_model.safetensors", out / "adapter_model.safetensors")
    adapter_config["base_model_name_or_path"] = base_repo_id
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n")
    _stage_processor(model_dir, out)
    extra = ADAPTER_CARD_SECTION.format(repo_id=repo_id, base_repo_id=base_repo_id, mode=summary["mode"],
                                        rank=adapter_config.get("r"))
    _write_card(model_dir, out, repo_id=repo_id, metrics=metrics_payload, dataset_repo_id=dataset_repo_id,
                base_model=base_repo_id, extra=extra)
    _check_safetensors(out)
    _check_safetensors(base_out)
    torch.set_grad_enabled(True)
    return out, base_out


ADAPTER_CARD_SECTION = """
## This repository is a PEFT adapter

The {mode} fine-tune is released as the rank-{rank} LoRA adapter it trained (plus the trained rows of the motion
vocabulary) on top of [`{base_repo_id}`](https://huggingface.co/{base_repo_id}): the base language model with the
motion vocabulary added, before fine-tuning. With `peft` installed, `from_pretrained` fetches the base and applies the
adapter:

```python
from transformers import AutoModelForCausalLM, AutoProcessor

model = AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True)  # base + adapter
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model  # optional: plain weights
```
"""


def _write_base_card(out: Path, summary: dict, *, repo_id: str, base_repo_id: str) -> None:
    base_model = summary.get("base_model")
    card = f"""---
library_name: transformers
tags: [biomechgpt, motion-language-model, custom_code]
license: apache-2.0
{f"base_model: {base_model}" if _is_hub_id(base_model) else ""}
---

# {base_repo_id.split("/")[-1]}

The base of the BiomechGPT adapter [`{repo_id}`](https://huggingface.co/{repo_id}): the language model
`{base_model}` with the motion vocabulary added (`<motion>`, `</motion>` and one token per MotionTokenizer code,
initialised from the codebook), **not fine-tuned**. Load the adapter repository, not this one, to answer questions:

```python
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True)
```

Loading this base on its own works with the package installed (`import biomechgpt`) or with
`trust_remote_code=True`.
"""
    (out / "README.md").write_text(card.replace("\n\n---", "\n---"))


# ---------------------------------------------------------------------------------------------------------------------
# validation

_VALIDATION_SEED = 0


def _validation_motion(processor) -> Any:
    """A fixed motion for the answer comparison: a smooth gait-like float array when a MotionTokenizer is bundled
    (it turns it into codes) or the model reads motion frames, else a fixed code sequence."""
    import numpy as np

    tokenizer = getattr(processor, "motion_tokenizer", None)
    if tokenizer is None and not getattr(processor, "reads_features", False):
        size = processor.codebook_size or 16
        return [int(i * 7 % size) for i in range(32)]
    extractor = tokenizer.feature_extractor if tokenizer is not None else processor.feature_extractor
    n_coords = len(extractor.coordinates)
    t = np.arange(120, dtype=np.float64)[:, None] / (tokenizer or extractor).frame_rate
    phase = np.arange(n_coords, dtype=np.float64)[None] * 0.37
    return (0.3 * np.sin(2 * np.pi * 0.9 * t + phase)).astype(np.float32)  # (frames, coords) radians


def _motion_for_answers(processor, motion) -> tuple[list[int], Any]:
    """`(codes, what the model is asked about)` for the validation motion: the codes the bundled MotionTokenizer
    gives (compared between loads; empty without one) and the codes, or the motion itself for a model that reads
    motion frames. This function's source also runs in the remote-code check."""
    if isinstance(motion, list):
        return motion, motion
    tokenizer = getattr(processor, "motion_tokenizer", None)
    codes = [int(c) for c in tokenizer.encode(motion)] if tokenizer is not None else []
    return codes, (motion if getattr(processor, "reads_features", False) else codes)


def _validation_questions(processor) -> tuple[list[str], list[str | None]]:
    questions, tasks = [], []
    for task in sorted(processor.task_kinds):
        examples = processor.task_questions.get(task) or []
        if examples:
            questions.append(examples[0])
            tasks.append(task)
    if not questions:
        raise ReleaseError("the processor knows no tasks (processor_config.json task_questions is empty)")
    return questions, tasks


# How closely two loads of a release (package and remote code; merged model and adapter) must agree.
# Exact: the motion codes and each answer's question, task, label and unit.
# Within ANSWER_ATOL + ANSWER_RTOL * |reference value|: the confidence, value and spread, and the log-likelihood each
# load gives the reference load's answer text. These are float results that legitimately differ in the last digits:
# the remote check runs with one thread, the package with several, and reductions then sum in another order.
# Generated text itself is not compared: greedy decoding may break a near-tie the other way after the same
# probabilities (a closed-set answer is fixed by its label, a graded numeric one by its value, and any answer's text
# is checked through its likelihood under both loads).
ANSWER_ATOL = 1e-3
ANSWER_RTOL = 1e-3
_FLOAT_FIELDS = ("confidence", "value", "spread")
_EXACT_FIELDS = ("question", "task", "label", "unit")


def _answer_log_likelihoods(model, processor, codes, motion, questions, answers) -> list[float]:
    """The log-likelihood of each answer text (its tokens and end-of-turn token) after its question about the motion:
    one forward pass per question. This function's source also runs in the remote-code check (it may use only torch
    and what `model` and `processor` provide)."""
    import torch

    extra = {}
    if getattr(processor, "reads_features", False):  # a model that reads the motion's frames, not only its codes
        extra = processor.collate_motion_inputs([processor.motion_inputs(motion)])
    results = []
    for question, answer in zip(questions, answers):
        example = processor.build_training_example(codes, [(question, answer)])
        input_ids, targets = torch.tensor([example["input_ids"]]), torch.tensor(example["labels"][1:])
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **extra).logits
        scored = targets != -100
        logprobs = torch.log_softmax(logits[0, :-1][scored].double(), -1)
        results.append(float(logprobs.gather(-1, targets[scored][:, None]).sum()))
    return results


def _answers(model, processor, motion, reference: dict | None = None) -> dict:
    """The validation questions' answers, and the log-likelihood of the `reference` answers' texts (default: these
    answers' own texts)."""
    codes, asked = _motion_for_answers(processor, motion)
    questions, tasks = _validation_questions(processor)
    answers = model.answer_batch([asked] * len(questions), questions, tasks=tasks, processor=processor,
                                 max_new_tokens=24)
    texts = [a["answer"] for a in reference["answers"]] if reference else [a.answer for a in answers]
    return {"codes": codes, "answers": [a.to_dict() for a in answers],
            "log_likelihoods": _answer_log_likelihoods(model, processor, codes, motion, questions, texts)}


_REMOTE_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["biomechgpt"] = None  # the package must not be importable: everything comes from the folders
    try:
        import biomechgpt  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("biomechgpt is importable in the remote-code check")
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoProcessor

    folder, base, motion_path, out, questions_path, reference_path = sys.argv[1:7]
    if base:  # an adapter: load its base as remote code, then the adapter with peft
        from peft import PeftModel

        model = AutoModelForCausalLM.from_pretrained(base, trust_remote_code=True)
        model = PeftModel.from_pretrained(model, folder).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    model.eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    motion = json.load(open(motion_path))
    if isinstance(motion, dict):
        motion = np.asarray(motion["values"], dtype=np.float32)
    codes, asked = _motion_for_answers(processor, motion)
    questions, tasks = json.load(open(questions_path))
    answers = model.answer_batch([asked] * len(questions), questions, tasks=tasks, processor=processor,
                                 max_new_tokens=24)
    texts = json.load(open(reference_path))
    result = {"codes": codes, "answers": [a.to_dict() for a in answers],
              "log_likelihoods": _answer_log_likelihoods(model, processor, codes, motion, questions, texts),
              "model_module": type(model).__module__, "processor_module": type(processor).__module__}
    json.dump(result, open(out, "w"))
""")


def _remote_answers(folder: Path, motion: Any, processor, reference: dict, base: Path | None = None,
                    timeout: int = 600) -> dict:
    """Load `folder` as remote code in a fresh, isolated interpreter (`-I`, no PYTHONPATH, cwd outside the repo,
    `biomechgpt` blocked), answer the validation questions there and score the `reference` answers' texts."""
    with tempfile.TemporaryDirectory(prefix="biomechgpt-remote-") as tmp:
        tmp = Path(tmp)
        script, motion_path, questions_path, reference_path, out = (tmp / name for name in (
            "remote.py", "motion.json", "questions.json", "reference.json", "answers.json"))
        # the package's own functions, so both loads are asked and score text the same way
        helpers = "\n\n".join(inspect.getsource(f) for f in (_motion_for_answers, _answer_log_likelihoods))
        script.write_text("from __future__ import annotations\n\n" + helpers + "\n" + _REMOTE_SCRIPT)
        payload = motion if isinstance(motion, list) else {"values": motion.tolist()}
        motion_path.write_text(json.dumps(payload))
        questions_path.write_text(json.dumps(list(_validation_questions(processor))))
        reference_path.write_text(json.dumps([a["answer"] for a in reference["answers"]]))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "HF_HUB_OFFLINE": "1",
               "HF_HOME": str(tmp / "hf"), "HF_MODULES_CACHE": str(tmp / "modules"), "OMP_NUM_THREADS": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        done = subprocess.run(
            [sys.executable, "-I", str(script), str(folder.resolve()), str(base.resolve()) if base else "",
             str(motion_path), str(out), str(questions_path), str(reference_path)],
            env=env, cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            last = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
            raise ReleaseError(f"{folder}: does not load with trust_remote_code=True without the package "
                               f"({last[0].strip()[:300]})")
        return json.loads(out.read_text())


def _close(reference: float | None, other: float | None) -> bool:
    if reference is None or other is None:
        return reference is None and other is None
    return math.isclose(other, reference, rel_tol=ANSWER_RTOL, abs_tol=ANSWER_ATOL)


def _compare_answers(folder: Path, reference: dict, other: dict, processor: Any,
                     names: tuple[str, str] = ("with the package", "as remote code")) -> None:
    """Require `other` (a second load's answers, with the log-likelihoods of `reference`'s texts) to agree with
    `reference`: exactly on the codes, questions, tasks, labels and units, within `ANSWER_ATOL` / `ANSWER_RTOL` on
    confidences, values, spreads and answer log-likelihoods. The error names the question, the field and both
    values.

    A generated answer's label, value and unit are read back from its text, with the QA corpus's parser where the
    package is installed and a plain number otherwise (`processor.parse_answer`): they legitimately differ between
    the two loads, so such answers are compared through the likelihood of their text only."""
    first, second = names
    generated = {t for t, kind in processor.task_kinds.items()
                 if kind != "closed" and t not in processor.numeric_answers}
    if reference["codes"] != other["codes"]:
        raise ReleaseError(f"{folder}: the bundled MotionTokenizer gives different codes {first} and {second}")
    if len(reference["answers"]) != len(other["answers"]):
        raise ReleaseError(f"{folder}: {len(reference['answers'])} answers {first} but {len(other['answers'])} "
                           f"{second}")
    tolerance = f"tolerance {ANSWER_ATOL:g} + {ANSWER_RTOL:g} x |value|"
    for k, (mine, theirs) in enumerate(zip(reference["answers"], other["answers"])):
        question = mine["question"]
        from_text = mine.get("task") is None or mine.get("task") in generated
        for key in _EXACT_FIELDS[:2] if from_text else _EXACT_FIELDS:
            if mine.get(key) != theirs.get(key):
                raise ReleaseError(f"{folder}: {question!r}: {key} is {mine.get(key)!r} {first} but "
                                   f"{theirs.get(key)!r} {second}")
        for key in () if from_text else _FLOAT_FIELDS:
            if not _close(mine.get(key), theirs.get(key)):
                raise ReleaseError(f"{folder}: {question!r}: {key} is {mine.get(key)!r} {first} but "
                                   f"{theirs.get(key)!r} {second} ({tolerance})")
        ours, their = reference["log_likelihoods"][k], other["log_likelihoods"][k]
        if not _close(ours, their):
            raise ReleaseError(f"{folder}: {question!r}: the log-likelihood of the answer {mine['answer']!r} is "
                               f"{ours!r} {first} but {their!r} {second} ({tolerance})")


def _local_load(folder: Path, base: Path | None = None):
    import biomechgpt  # noqa: F401  (registers the Auto classes)
    from transformers import AutoModelForCausalLM, AutoProcessor

    from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTForCausalLM
    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor

    try:
        if base is None:
            model = AutoModelForCausalLM.from_pretrained(folder)
        else:
            from peft import PeftModel

            from biomechgpt.training.train_lm import _quiet_peft

            with _quiet_peft():
                model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder)
            model = model.merge_and_unload()
        processor = AutoProcessor.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as err:
        raise ReleaseError(f"{folder}: does not load with the Auto classes ({' '.join(str(err).split())[:300]})"
                           ) from None
    if not isinstance(model, BiomechGPTForCausalLM) or not isinstance(processor, BiomechGPTProcessor):
        raise ReleaseError(f"{folder}: the Auto classes gave {type(model).__name__} / {type(processor).__name__}")
    return model.eval(), processor


def validate_model_release(folder: str | os.PathLike, *, remote_code: bool = True, need_results: bool = True) -> dict:
    """Check a staged model folder: safetensors only, a model card with results, loads with `AutoModelForCausalLM` /
    `AutoProcessor` (package installed) and, when `remote_code`, with `trust_remote_code=True` in a fresh process
    without the package, giving the same answers to the same questions about the same motion (see `ANSWER_ATOL` for
    what "the same" means).

    Returns:
        `dict` with `files`, `card` and `answers` (and `remote_answers`).
    """
    folder = Path(folder)
    _refuse_pickles(folder, "release")
    _check_safetensors(folder)
    report: dict[str, Any] = {"files": list_files(folder), "card": _check_card(folder, need_results=need_results)}
    model, processor = _local_load(folder)
    motion = _validation_motion(processor)
    report["answers"] = _answers(model, processor, motion)
    if remote_code:
        remote = _remote_answers(folder, motion, processor, report["answers"])
        if remote["model_module"].startswith("biomechgpt") or remote["processor_module"].startswith("biomechgpt"):
            raise ReleaseError(f"{folder}: the remote-code check loaded the installed package")
        _compare_answers(folder, report["answers"], remote, processor)
        report["remote_answers"] = remote
    return report


def validate_adapter_release(adapter: str | os.PathLike, base: str | os.PathLike, *, model_dir=None,
                             remote_code: bool = True) -> dict:
    """Check a staged adapter and its base: both load (base alone; base + adapter with peft, with and without the
    package), the adapter's answers equal those of the merged model in `model_dir` (when given), and its weights
    reproduce that model's within 1e-4."""
    import torch

    adapter, base = Path(adapter), Path(base)
    for folder in (adapter, base):
        _refuse_pickles(folder, "release")
        _check_safetensors(folder)
    if not (adapter / "adapter_config.json").is_file() or not (adapter / "adapter_model.safetensors").is_file():
        raise ReleaseError(f"{adapter}: not a PEFT adapter folder (adapter_config.json, adapter_model.safetensors)")
    report: dict[str, Any] = {"files": list_files(adapter), "base_files": list_files(base),
                              "card": _check_card(adapter, need_results=True)}
    _check_card(base, need_results=False)
    model, processor = _local_load(adapter, base=base)
    motion = _validation_motion(processor)
    report["answers"] = _answers(model, processor, motion)
    if model_dir is not None:
        merged, _ = _local_load(Path(model_dir))
        merged_state = merged.state_dict()
        worst, worst_name = 0.0, None
        for name, weight in model.state_dict().items():
            reference = merged_state[name].float()
            rtol = 0.0 if weight.dtype == torch.float32 else 2 * torch.finfo(weight.dtype).eps
            excess = ((weight.float() - reference).abs() - rtol * reference.abs()).max()
            if float(excess) > worst:
                worst, worst_name = float(excess), name
        report["max_weight_difference"] = worst
        if worst > _ADAPTER_ATOL:
            raise ReleaseError(f"{adapter}: base + adapter differ from the merged model by {worst:.2e} "
                               f"({worst_name}): was the merged model trained with this adapter?")
        merged_answers = _answers(merged, processor, motion, reference=report["answers"])
        _compare_answers(adapter, report["answers"], merged_answers, processor,
                         names=("by base + adapter", "by the merged model"))
        del merged
    if remote_code:
        remote = _remote_answers(adapter, motion, processor, report["answers"], base=base)
        _compare_answers(adapter, report["answers"], remote, processor)
        report["remote_answers"] = remote
    del model
    torch.set_grad_enabled(True)
    return report


_CORPUS_COLUMNS = ("id", "question", "answer", "task", "motion_codes")


def validate_dataset_release(folder: str | os.PathLike) -> dict:
    """Check a staged dataset folder loads with `datasets.load_dataset(folder)` and has the corpus columns.

    Returns:
        `dict` with `splits` (split -> rows) and `files`.
    """
    import datasets

    folder = Path(folder)
    _refuse_pickles(folder, "release")
    with tempfile.TemporaryDirectory(prefix="biomechgpt-dataset-check-") as cache:
        try:
            loaded = datasets.load_dataset(str(folder), cache_dir=cache)
        except Exception as err:  # datasets raises many types for a malformed card or shard
            raise ReleaseError(f"{folder}: does not load with datasets.load_dataset "
                               f"({' '.join(str(err).split())[:300]})") from None
        splits = {name: split.num_rows for name, split in loaded.items()}
        for name, split in loaded.items():
            missing = [c for c in _CORPUS_COLUMNS if c not in split.column_names]
            if missing:
                raise ReleaseError(f"{folder}: split {name} lacks columns {', '.join(missing)}")
        del loaded
    if not splits or not any(splits.values()):
        raise ReleaseError(f"{folder}: the dataset has no rows")
    return {"splits": splits, "files": list_files(folder)}


# ---------------------------------------------------------------------------------------------------------------------
# the whole release


def prepare_release(
    model_dir: str | os.PathLike,
    staging_dir: str | os.PathLike,
    *,
    repo_id: str,
    dataset_dir: str | os.PathLike | None = None,
    dataset_repo_id: str | None = None,
    adapter: bool = False,
    base_repo_id: str | None = None,
    metrics: str | os.PathLike | dict | None = None,
    validate: bool = True,
    remote_code: bool = True,
) -> Release:
    """Build (and validate) every folder of a release under `staging_dir`: `model/` (or `adapter/` and `base/`) and
    `dataset/`.

    Args:
        model_dir (`str` or `os.PathLike`): the trained model folder.
        staging_dir (`str` or `os.PathLike`): where to build; must not exist or be empty.
        repo_id (`str`): the model repository ("owner/name").
        dataset_dir (`str` or `os.PathLike`, *optional*): the QA corpus folder to release too.
        dataset_repo_id (`str`, *optional*): its repository; required with `dataset_dir`.
        adapter (`bool`, *optional*, defaults to `False`): release a LoRA / QLoRA run as a PEFT adapter (plus its
            base, to `base_repo_id`) instead of merged weights.
        base_repo_id (`str`, *optional*): the adapter's base repository; defaults to `f"{repo_id}-base"`.
        metrics (*optional*): the evaluation's `metrics.json` (path or payload) for the model card.
        validate (`bool`, *optional*, defaults to `True`): run the checks (see `validate_model_release`).
        remote_code (`bool`, *optional*, defaults to `True`): include the remote-code check (a fresh interpreter).

    Returns:
        [`Release`].
    """
    _check_repo_id(repo_id, "--repo-id")
    if dataset_dir is not None and not dataset_repo_id:
        raise ReleaseError("--dataset needs --dataset-repo-id ORG/NAME")
    if dataset_repo_id:
        if dataset_dir is None:
            raise ReleaseError("--dataset-repo-id needs --dataset DIR")
        _check_repo_id(dataset_repo_id, "--dataset-repo-id")
    if adapter:
        base_repo_id = _check_repo_id(base_repo_id or f"{repo_id}-base", "--base-repo-id")
        if base_repo_id == repo_id:
            raise ReleaseError("--base-repo-id must differ from --repo-id")
    staging = _empty_folder(staging_dir)
    folders: list[ReleaseFolder] = []
    release = Release(folders)
    if adapter:
        out, base = build_adapter_release(model_dir, staging / "adapter", staging / "base", repo_id=repo_id,
                                          base_repo_id=base_repo_id, metrics=metrics,
                                          dataset_repo_id=dataset_repo_id)
        folders += [ReleaseFolder("base", base, base_repo_id), ReleaseFolder("adapter", out, repo_id)]
    else:
        out = build_model_release(model_dir, staging / "model", repo_id=repo_id, metrics=metrics,
                                  dataset_repo_id=dataset_repo_id)
        folders.append(ReleaseFolder("model", out, repo_id))
    if dataset_dir is not None:
        folders.append(ReleaseFolder("dataset", build_dataset_release(dataset_dir, staging / "dataset"),
                                     dataset_repo_id, "dataset"))
    if validate:
        if adapter:
            release.checks["adapter"] = validate_adapter_release(out, base, model_dir=model_dir,
                                                                 remote_code=remote_code)
        else:
            release.checks["model"] = validate_model_release(out, remote_code=remote_code)
        if dataset_dir is not None:
            release.checks["dataset"] = validate_dataset_release(release.folder("dataset").path)
    return release


def resolve_token(token: str | None = None) -> str:
    """The Hub token: `token`, else `HF_TOKEN`, else the `hf auth login` cache. Raises `ReleaseError` (one line)
    when there is none or the Hub is switched off (`HF_HUB_OFFLINE`)."""
    from huggingface_hub import constants, get_token

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if offline or constants.HF_HUB_OFFLINE:
        raise ReleaseError("HF_HUB_OFFLINE is set: the Hub cannot be reached; unset it to push (nothing was uploaded)")
    token = token or get_token()
    if not token:
        raise ReleaseError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (nothing was uploaded)")
    return token


def upload_release(release: Release, *, private: bool = False, revision: str | None = None,
                   token: str | None = None, commit_message: str | None = None) -> list[str]:
    """Upload every folder of `release` with `HfApi.upload_folder`; the repositories are created first (private when
    asked), and `revision` (a branch, created from main when missing) receives the commit.

    Returns:
        `list[str]`: the commit URL of each folder.
    """
    from huggingface_hub import HfApi

    token = resolve_token(token)
    api = HfApi(token=token)
    step = "create the repositories"
    try:
        for folder in release.folders:
            api.create_repo(folder.repo_id, repo_type=folder.repo_type, private=private, exist_ok=True)
            if revision:
                api.create_branch(folder.repo_id, branch=revision, repo_type=folder.repo_type, exist_ok=True)
        urls = []
        for folder in release.folders:
            step = f"upload {folder.kind} to {folder.repo_id}"
            info = api.upload_folder(repo_id=folder.repo_id, folder_path=str(folder.path), repo_type=folder.repo_type,
                                     revision=revision, commit_message=commit_message or f"biomechgpt: {folder.kind}")
            urls.append(str(getattr(info, "commit_url", info)))
    except Exception as err:  # httpx / requests / huggingface_hub errors: all mean the Hub refused or was unreachable
        text = " ".join(str(err).split())[:200] or type(err).__name__
        raise ReleaseError(f"could not {step} on the Hub ({type(err).__name__}: {text})") from None
    return urls


def push_release(model_dir: str | os.PathLike, *, repo_id: str, staging_dir: str | os.PathLike | None = None,
                 private: bool = False, revision: str | None = None, token: str | None = None,
                 **kwargs: Any) -> tuple[Release, list[str]]:
    """Build, validate and upload a release (see `prepare_release` for the other arguments). The token is checked
    before anything is built, and nothing is uploaded unless every check passed.

    Returns:
        `(Release, commit URLs)`.
    """
    token = resolve_token(token)
    if staging_dir is not None:
        release = prepare_release(model_dir, staging_dir, repo_id=repo_id, **kwargs)
        return release, upload_release(release, private=private, revision=revision, token=token)
    with tempfile.TemporaryDirectory(prefix="biomechgpt-release-") as tmp:
        release = prepare_release(model_dir, Path(tmp) / "release", repo_id=repo_id, **kwargs)
        return release, upload_release(release, private=private, revision=revision, token=token)
