"""Subcommands of the `biomechgpt` command, one module each (see `biomechgpt.cli`)."""

import argparse

__all__ = ["positive_int", "non_negative_int", "hide_weight_loading_bars"]


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def hide_weight_loading_bars() -> None:
    """Hide the progress bars transformers draws while loading weights ("Loading weights", "Loading checkpoint
    shards") for the rest of the command: a command that loads a model or a MotionTokenizer printed one per model,
    noise between its own output. Downloads, training and our own bars, and every warning, still show (the chat page
    hides the same bars while it loads, with `quiet_weight_loading`)."""
    from transformers.utils import logging as hf_logging

    from biomechgpt.chat.session import without_loading_bars

    hf_logging.set_tqdm_hook(without_loading_bars)
