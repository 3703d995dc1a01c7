"""Staging a release: the folders exactly as they will be uploaded, and the model card.

`build_model_release` copies a model folder's weights, code files, processor, text tokenizer and MotionTokenizer and
writes the model card (`README.md` with the evaluation's `model-index` results); `build_dataset_release` copies a QA
corpus folder's card, Parquet shards and answer space. The file checks (`refuse_pickles`, `check_safetensors`) and
the staging helpers here are shared by the adapter release (`biomechgpt.release.adapter`) and the validation
(`biomechgpt.release.validation`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biomechgpt.dataset_builder.answer_space import ANSWER_SPACE_FILE

__all__ = [
    "PICKLE_SUFFIXES",
    "MOTION_FOLDER",
    "ReleaseError",
    "ReleaseFolder",
    "Release",
    "list_files",
    "build_model_release",
    "build_dataset_release",
    "check_repo_id",
    "read_json",
    "refuse_pickles",
    "check_safetensors",
    "copy_file",
    "empty_folder",
    "check_model_source",
    "load_summary",
    "stage_processor",
    "is_hub_id",
    "find_metrics",
    "write_card",
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


def check_repo_id(repo_id: str, what: str) -> str:
    """`repo_id` when it reads ORG/NAME; else `ReleaseError` naming `what` (the option it came from)."""
    parts = str(repo_id).split("/")
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo_id):
        raise ReleaseError(f"{what} {repo_id!r}: expected ORG/NAME")
    return str(repo_id)


def read_json(path: Path) -> dict:
    """The JSON file at `path`; `ReleaseError` (one line) when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReleaseError(f"{path}: unreadable JSON ({' '.join(str(err).split())})") from None


def refuse_pickles(folder: Path, what: str) -> None:
    """Pickle-based weights run code when loaded: refuse a folder that would ship any (checkpoints/ never ships)."""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts and rel.parts[0] == "checkpoints":
            continue
        if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES:
            raise ReleaseError(f"{what} {folder}: {rel.as_posix()} is a pickle-format file; releases are "
                               "safetensors only (re-save the model with save_pretrained)")


def check_safetensors(folder: Path) -> None:
    """Every `*.safetensors` file under `folder` opens with safetensors; else `ReleaseError`."""
    from safetensors import safe_open

    for path in sorted(folder.rglob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
        except Exception as err:  # safetensors raises its own error types for truncated or foreign files
            raise ReleaseError(f"{path}: not a readable safetensors file ({' '.join(str(err).split())})") from None


def copy_file(src: Path, dst: Path) -> None:
    """Copy `src` to `dst`, creating `dst`'s folder."""
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


def is_hub_id(name: str | None) -> bool:
    """Whether `name` is a Hub repository id (ORG/NAME) rather than a local folder or an embedded model name."""
    return bool(name) and "/" in str(name) and not Path(str(name)).exists() and len(str(name).split("/")) == 2


def find_metrics(model_dir: Path, metrics: str | os.PathLike | dict | None) -> dict | None:
    """The evaluation payload: given, or `metrics.json` of the `biomechgpt run` layout (next to the model folder)."""
    if isinstance(metrics, dict):
        return metrics
    if metrics is not None:
        path = Path(metrics)
        if not path.is_file():
            raise ReleaseError(f"--metrics {path}: file not found")
        return read_json(path)
    for candidate in (model_dir / "metrics.json", model_dir.parent / "metrics.json"):
        if candidate.is_file():
            return read_json(candidate)
    return None


def write_card(model_dir: Path, out: Path, *, repo_id: str, metrics: dict | None, dataset_repo_id: str | None,
               base_model: str | None, extra: str = "") -> None:
    """README.md with model-index results: rendered by the evaluation's writer from the metrics, or the model
    folder's own card (written by `biomechgpt evaluate`) with its placeholder path replaced by the repository."""
    from biomechgpt.evaluation.model_card import render_model_card

    if metrics is not None:
        if not metrics.get("tasks"):
            raise ReleaseError("metrics: no per-task results ('tasks') to put in the model card")
        kwargs: dict[str, Any] = {"model_name": repo_id.split("/")[-1], "repo_id": repo_id,
                                  "base_model": base_model if is_hub_id(base_model) else None}
        if dataset_repo_id:
            kwargs["dataset_name"] = dataset_repo_id
        text = render_model_card(metrics, **kwargs)
    elif (model_dir / "README.md").is_file():
        text = (model_dir / "README.md").read_text().replace('"path/to/model"', f'"{repo_id}"')
    else:
        raise ReleaseError(f"{model_dir}: no evaluation results for the model card; run biomechgpt evaluate on it "
                           "or pass --metrics metrics.json")
    (out / "README.md").write_text(text.rstrip("\n") + "\n" + extra)


# ---------------------------------------------------------------------------------------------------------------------
# building


def load_summary(model_dir: Path) -> dict:
    """The model folder's `training_summary.json` (written by `biomechgpt train`), or `{}`."""
    path = model_dir / "training_summary.json"
    return read_json(path) if path.is_file() else {}


def check_model_source(model_dir: Path) -> dict:
    """The `config.json` of a model folder that can be released (safetensors weights, a processor, the Auto
    classes in `auto_map`); else `ReleaseError` naming the problem."""
    if not model_dir.is_dir():
        raise ReleaseError(f"--model {model_dir}: folder not found")
    if not (model_dir / "config.json").is_file():
        raise ReleaseError(f"--model {model_dir}: not a model folder (no config.json)")
    config = read_json(model_dir / "config.json")
    if config.get("model_type") != "biomechgpt":
        raise ReleaseError(f"--model {model_dir}: config.json model_type is {config.get('model_type')!r}, "
                           "not 'biomechgpt'")
    refuse_pickles(model_dir, "--model")
    if not (model_dir / "model.safetensors").is_file() and not (model_dir / "model.safetensors.index.json").is_file():
        raise ReleaseError(f"--model {model_dir}: no model.safetensors weights")
    if not (model_dir / "processor_config.json").is_file():
        raise ReleaseError(f"--model {model_dir}: no processor_config.json (save the processor with the model)")
    for key in ("AutoConfig", "AutoModelForCausalLM"):
        if key not in config.get("auto_map", {}):
            raise ReleaseError(f"--model {model_dir}: config.json auto_map lacks {key} (save with the package "
                               "imported so the Auto classes are registered)")
    return config


def stage_processor(model_dir: Path, out: Path) -> None:
    """Processor, tokenizer, processing code and MotionTokenizer files."""
    processor_config = read_json(model_dir / "processor_config.json")
    for name in _PROCESSOR_FILES:
        if (model_dir / name).is_file():
            copy_file(model_dir / name, out / name)
    for name in _code_files(processor_config, model_dir):
        copy_file(model_dir / name, out / name)
    motion = model_dir / MOTION_FOLDER
    if (motion / "config.json").is_file():
        for name in _MOTION_FILES:
            if (motion / name).is_file():
                copy_file(motion / name, out / MOTION_FOLDER / name)


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
    model_dir, out = Path(model_dir), empty_folder(out_dir)
    config = check_model_source(model_dir)
    for name in _MODEL_FILES:
        if (model_dir / name).is_file():
            copy_file(model_dir / name, out / name)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        for shard in sorted(set(read_json(index).get("weight_map", {}).values())):
            copy_file(model_dir / shard, out / shard)
    for name in _code_files(config, model_dir):
        copy_file(model_dir / name, out / name)
    stage_processor(model_dir, out)
    summary = load_summary(model_dir)
    write_card(model_dir, out, repo_id=repo_id, metrics=find_metrics(model_dir, metrics),
               dataset_repo_id=dataset_repo_id, base_model=summary.get("base_model"))
    check_safetensors(out)
    return out


def build_dataset_release(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Stage a QA corpus folder for upload: its dataset card, the Parquet shards under `data/` and, when the corpus
    has one (corpora built before it have not), `answer_space.json`."""
    dataset_dir, out = Path(dataset_dir), None
    if not dataset_dir.is_dir():
        raise ReleaseError(f"--dataset {dataset_dir}: folder not found")
    if not (dataset_dir / "README.md").is_file():
        raise ReleaseError(f"--dataset {dataset_dir}: no README.md dataset card (build it with biomechgpt "
                           "build-dataset)")
    shards = sorted((dataset_dir / "data").glob("*.parquet"))
    if not shards:
        raise ReleaseError(f"--dataset {dataset_dir}: no Parquet shards under data/")
    refuse_pickles(dataset_dir, "--dataset")
    out = empty_folder(out_dir)
    copy_file(dataset_dir / "README.md", out / "README.md")
    for shard in shards:
        copy_file(shard, out / "data" / shard.name)
    if (dataset_dir / ANSWER_SPACE_FILE).is_file():
        copy_file(dataset_dir / ANSWER_SPACE_FILE, out / ANSWER_SPACE_FILE)
    return out


def empty_folder(path: str | os.PathLike) -> Path:
    """`path` as a new or empty folder (created); `ReleaseError` when it exists with something in it."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ReleaseError(f"{path}: staging folder exists and is not empty")
    path.mkdir(parents=True, exist_ok=True)
    return path
