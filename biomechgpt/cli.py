"""The `biomechgpt` command: one entry point, one subcommand per stage.

Each stage lives in `biomechgpt/commands/<name>.py` and exposes `register(subparsers)`, which adds its parser and
sets `func` (called with the parsed arguments, returns an exit status). Command modules keep heavy imports (torch,
transformers) inside their functions so `biomechgpt --help` stays fast.

The list of stages (`COMMANDS`, `available_commands`) lives in `biomechgpt.commands.registry` and `UsageError` in
`biomechgpt.errors`, so library code never imports this module; both are importable from here too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from biomechgpt.commands.registry import COMMANDS, available_commands
from biomechgpt.errors import UsageError
from biomechgpt.processing.motion import MotionInputError

__all__ = ["main", "build_parser", "COMMANDS", "UsageError"]


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block before the error; we keep errors to one line and point at --help.
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="biomechgpt", description="Answer clinical questions about human movement.")
    parser.add_argument("--version", action="version", version=f"biomechgpt {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in available_commands():
        importlib.import_module(f"biomechgpt.commands.{name}").register(sub)
    return parser


def _version() -> str:
    from biomechgpt import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (MotionInputError, UsageError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as err:
        # Stages raise ValueError for bad input (a wrong folder, mismatched checkpoint settings); users get one line.
        # BIOMECHGPT_DEBUG=1 shows the traceback when the line is not enough.
        if os.environ.get("BIOMECHGPT_DEBUG"):
            raise
        sys.stderr.write(f"biomechgpt {args.command}: error: {_one_line(err)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("biomechgpt: interrupted\n")
        return 130


def _one_line(err: BaseException) -> str:
    text = str(err) if not isinstance(err, FileNotFoundError) or not err.filename else f"{err.filename}: not found"
    return " ".join(text.split())


if __name__ == "__main__":
    raise SystemExit(main())
