"""Uploading a release to the Hugging Face Hub: the token, `upload_release` and the whole `push_release`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from biomechgpt.release.prepare import prepare_release
from biomechgpt.release.staging import Release, ReleaseError

__all__ = ["resolve_token", "upload_release", "push_release"]

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
