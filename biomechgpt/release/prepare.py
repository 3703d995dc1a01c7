"""Building and validating every folder of a release: `prepare_release` (what `biomechgpt push --dry-run` does)."""

from __future__ import annotations

import os

from biomechgpt.release.adapter import build_adapter_release
from biomechgpt.release.staging import (
    Release,
    ReleaseError,
    ReleaseFolder,
    build_dataset_release,
    build_model_release,
    check_repo_id,
    empty_folder,
)
from biomechgpt.release.validation import validate_adapter_release, validate_dataset_release, validate_model_release

__all__ = ["prepare_release"]

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
    check_repo_id(repo_id, "--repo-id")
    if dataset_dir is not None and not dataset_repo_id:
        raise ReleaseError("--dataset needs --dataset-repo-id ORG/NAME")
    if dataset_repo_id:
        if dataset_dir is None:
            raise ReleaseError("--dataset-repo-id needs --dataset DIR")
        check_repo_id(dataset_repo_id, "--dataset-repo-id")
    if adapter:
        base_repo_id = check_repo_id(base_repo_id or f"{repo_id}-base", "--base-repo-id")
        if base_repo_id == repo_id:
            raise ReleaseError("--base-repo-id must differ from --repo-id")
    staging = empty_folder(staging_dir)
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
