"""pyproject.toml lists every subpackage: an editable install finds unlisted ones, a wheel (`pip install biomechgpt`)
silently leaves them out."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_installed():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {package: ROOT / folder for package, folder in setuptools["package-dir"].items()}
    found = set()
    for package, folder in folders.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            if "__pycache__" not in relative:
                found.add(".".join((package, *relative)))
    assert found == listed


def test_modeling_and_processing_import_only_what_remote_code_can():
    # Module-level imports only: optional helpers imported inside functions (the motion readers, the corpus parser)
    # fall back cleanly when biomechgpt is not installed, and their own tests cover that.
    allowed = {"torch", "transformers", "numpy", "__future__", "dataclasses", "typing", "collections", "math", "os",
               "json", "copy", "functools", "itertools", "pathlib", "re", "warnings", "importlib", "contextlib",
               "enum", "abc", "inspect", "threading", "weakref", "random", "time", "logging", "shutil", "tempfile",
               "string", "sys", "io", "hashlib"}
    for folder in ("modeling", "processing"):
        for path in (ROOT / folder).glob("*.py"):
            for line in path.read_text().splitlines():
                words = line.split()
                if line.startswith(("import ", "from ")) and not words[1].startswith("."):
                    assert words[1].split(".")[0] in allowed, f"{path.name}: {line}"
