"""Subcommands of the `biomechgpt` command, one module each (see `biomechgpt.cli`)."""
