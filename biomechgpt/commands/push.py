"""`biomechgpt push`: release a model (and its QA corpus) to the Hugging Face Hub, or check a release with
`--dry-run`."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a model (and its dataset) to the Hugging Face Hub",
        description="Builds the release folders (model: safetensors weights, config with auto_map, code files, "
        "processor, MotionTokenizer, model card with results; dataset: Parquet shards and card), validates them "
        "(loads with and without the package, same answers, dataset loads) and uploads them with huggingface_hub. "
        "The token comes from HF_TOKEN or `hf auth login`.",
    )
    parser.add_argument("--model", required=True, help="model folder (biomechgpt train --out)")
    parser.add_argument("--repo-id", required=True, help="model repository, ORG/NAME")
    parser.add_argument("--dataset", default=None, help="QA corpus folder to release too (biomechgpt build-dataset)")
    parser.add_argument("--dataset-repo-id", default=None, help="dataset repository, ORG/NAME")
    parser.add_argument("--metrics", default=None,
                        help="metrics.json of biomechgpt evaluate for the model card (default: found next to the "
                        "model folder, else the folder's README.md)")
    parser.add_argument("--private", action="store_true", help="create the repositories as private")
    parser.add_argument("--revision", default=None, help="branch to commit to (created when missing; default: main)")
    parser.add_argument("--dry-run", action="store_true",
                        help="build and validate the folders, print their files and sizes, upload nothing")
    parser.add_argument("--staging", default=None,
                        help="build the release here (must be empty; default: a temporary folder, removed after)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--adapter", action="store_true",
                      help="release a LoRA/QLoRA run as a PEFT adapter on top of its base (pushed to --base-repo-id)")
    mode.add_argument("--merge", action="store_true", help="release merged weights (the default)")
    parser.add_argument("--base-repo-id", default=None,
                        help="with --adapter: repository of the adapter's base (default: REPO_ID-base)")
    parser.add_argument("--skip-remote-check", action="store_true",
                        help="skip loading the release in a fresh interpreter without the package (faster)")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from biomechgpt.errors import UsageError
    from biomechgpt.release import ReleaseError, prepare_release, resolve_token, upload_release

    import datasets
    from transformers.utils import logging as hf_logging

    # the file list and the checks are the output; loading bars would interleave with them
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    if args.base_repo_id and not args.adapter:
        raise UsageError("--base-repo-id: only with --adapter")
    try:
        # No token or no network: fail before the (slow) build, with nothing written remotely.
        token = None if args.dry_run else resolve_token()
        options = dict(repo_id=args.repo_id, dataset_dir=args.dataset, dataset_repo_id=args.dataset_repo_id,
                       adapter=args.adapter, base_repo_id=args.base_repo_id, metrics=args.metrics,
                       remote_code=not args.skip_remote_check)
        with tempfile.TemporaryDirectory(prefix="biomechgpt-release-") as tmp:
            staging = Path(args.staging) if args.staging else Path(tmp) / "release"
            release = prepare_release(args.model, staging, **options)
            print(release.listing())
            _print_checks(release)
            if args.dry_run:
                print("dry run: validated, nothing uploaded" + ("" if args.staging else " (staging folder removed)"))
                return 0
            urls = upload_release(release, private=args.private, revision=args.revision, token=token)
    except ReleaseError as err:
        raise UsageError(str(err)) from None
    for folder, url in zip(release.folders, urls):
        print(f"pushed {folder.kind} to {folder.repo_type} {folder.repo_id}: {url}")
    return 0


def _print_checks(release) -> None:
    from biomechgpt.release import ANSWER_ATOL, ANSWER_RTOL

    for kind, check in release.checks.items():
        if kind == "dataset":
            rows = ", ".join(f"{split} {n}" for split, n in check["splits"].items())
            print(f"check dataset: loads with datasets.load_dataset ({rows} rows)")
            continue
        answers, results = check["answers"]["answers"], check["card"]["results"]
        if "remote_answers" in check:
            print(f"check {kind}: loads with and without the package; {len(answers)} questions answered alike (task, "
                  f"label and unit equal; confidence, value, spread and answer log-likelihood within {ANSWER_ATOL:g} "
                  f"+ {ANSWER_RTOL:g} x |value|); model card has {results} results")
        else:
            print(f"check {kind}: loads with the package; {len(answers)} questions answered; remote-code check "
                  f"skipped (--skip-remote-check); model card has {results} results")
        if "max_weight_difference" in check:
            print(f"check {kind}: base + adapter reproduce the merged weights (max difference "
                  f"{check['max_weight_difference']:.1e})")
