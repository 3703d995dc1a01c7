"""The subcommands of `biomechgpt`, in pipeline order, and which of them this installation has.

Kept apart from `biomechgpt.cli` (argument parsing and the entry point) so library code, such as `biomechgpt.pipeline`
asking which stages it can run, never imports the command line. Each name is a module `biomechgpt.commands.<name>`
with `register(subparsers)`.
"""

from __future__ import annotations

import importlib

__all__ = ["COMMANDS", "available_commands"]

# The order in which `biomechgpt --help` lists the stages; also the pipeline order of `biomechgpt run`.
COMMANDS = (
    "inspect",
    "simulate",
    "train_tokenizer",
    "build_dataset",
    "train",
    "evaluate",
    "ask",
    "chat",
    "push",
    "run",
)


def available_commands() -> list[str]:
    """The stages that exist in this installation (later stages may not be built yet)."""
    found = []
    for name in COMMANDS:
        try:
            importlib.import_module(f"biomechgpt.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"biomechgpt.commands.{name}":
                raise
            continue
        found.append(name)
    return found
