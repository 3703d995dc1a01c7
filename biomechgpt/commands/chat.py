"""`biomechgpt chat`: the web page for chatting with the model about a movement."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="web page: choose or upload a motion, see it, and ask the model about it",
        description="Serves a Gradio page (needs the 'chat' extra: pip install 'biomechgpt[chat]'). Binds to "
                    "127.0.0.1 unless --host says otherwise.",
    )
    parser.add_argument("--model", required=True, help="model folder (biomechgpt train --out DIR)")
    parser.add_argument("--dataset", default=None, help="QA corpus folder whose trials can be chosen")
    parser.add_argument("--cohort", default=None, help="cohort folder whose trials can be chosen")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest accepted upload (default: 20)")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from biomechgpt.errors import UsageError

    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
    if not args.max_upload_mb > 0:
        raise UsageError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    if args.host != "localhost":
        try:
            ipaddress.ip_address(args.host)
        except ValueError:
            raise UsageError(f"--host must be an IP address or localhost, got {args.host!r}") from None
    model = Path(args.model)
    if not (model / "config.json").is_file():
        raise UsageError(f"--model {model}: not a model folder (no config.json)")
    for flag, folder in (("--dataset", args.dataset), ("--cohort", args.cohort)):
        if folder is not None and not Path(folder).is_dir():
            raise UsageError(f"{flag} {folder}: not a folder")
    try:
        import gradio  # noqa: F401
    except ModuleNotFoundError:
        raise UsageError("the chat page needs gradio: pip install 'biomechgpt[chat]'") from None

    from transformers.utils import logging as hf_logging

    from biomechgpt.chat.app import build_app, launch_app

    hf_logging.disable_progress_bar()  # loading a small model takes a second; its three weight bars were noise
    demo = build_app(model, dataset_dir=args.dataset, cohort_dir=args.cohort, max_upload_mb=args.max_upload_mb)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach this address can use the model")
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"biomechgpt chat: serving on http://{host}:{args.port}/ (Ctrl+C stops it)", flush=True)
    launch_app(demo, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, quiet=True)
    return 0
