"""The import rules, checked on the source with `ast` (nothing is imported):

- only the command line (`biomechgpt/cli.py`, `biomechgpt/commands/`) imports `biomechgpt.cli`: library code raises
  `biomechgpt.errors.UsageError` and asks `biomechgpt.commands.registry` which stages exist;
- the modules of `biomechgpt.evaluation` and of `biomechgpt.release` import each other without a cycle;
- no module imports a private (`_name`) name from another project module, except the allow-list below.

Imports inside functions count as much as those at the top: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The installed package of each top-level source folder (pyproject.toml's package-dir).
SOURCES = {"biomechgpt": "biomechgpt", "biomechgpt.modeling": "modeling", "biomechgpt.processing": "processing",
           "biomechgpt.dataset_builder": "dataset_builder"}
COMMAND_LINE = ("biomechgpt.cli", "biomechgpt.commands")
ACYCLIC_PACKAGES = ("biomechgpt.evaluation", "biomechgpt.release")

# (importing module, module imported from, private name): private imports allowed, each with a comment giving its
# reason; none today. An entry that no longer occurs fails the test too, so the list only shrinks.
ALLOWED_PRIVATE_IMPORTS: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class Import:
    importer: str  # the module that imports
    module: str  # the module imported (from), absolute
    name: str | None  # the name taken from it by `from module import name`; None when the module itself is imported
    line: int


def project_modules(root: Path, sources: dict[str, str] = SOURCES) -> dict[str, Path]:
    """Module name -> file, for every .py file of the source folders."""
    modules = {}
    for package, folder in sources.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            modules[".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))] = path
    return modules


def find_imports(modules: dict[str, Path]) -> list[Import]:
    """Every import statement of `modules`, resolved to absolute module names (`from package import submodule`
    imports the submodule)."""
    found = []
    for importer, path in modules.items():
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found += [Import(importer, alias.name, None, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    found.append(Import(importer, submodule, None, node.lineno) if submodule in modules
                                 else Import(importer, base, alias.name, node.lineno))
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def cli_imports(imports: list[Import]) -> list[Import]:
    """Imports of `biomechgpt.cli` by modules outside the command line."""
    return [i for i in imports if _within(i.module, "biomechgpt.cli")
            and not any(_within(i.importer, allowed) for allowed in COMMAND_LINE)]


def private_imports(imports: list[Import]) -> set[tuple[str, str, str]]:
    """`(importer, module, name)` of every private name taken from another project module."""
    return {(i.importer, i.module, i.name) for i in imports
            if i.name and i.name.startswith("_") and not i.name.endswith("__")
            and _within(i.module, "biomechgpt") and i.module != i.importer}


def import_cycles(modules: dict[str, Path], imports: list[Import], package: str) -> list[list[str]]:
    """The cycles among the modules of `package` (one per edge that closes one), each as a path `a -> ... -> a`."""
    inside = sorted(m for m in modules if _within(m, package))
    graph = {m: sorted({i.module for i in imports if i.importer == m and i.module in inside and i.module != m})
             for m in inside}
    cycles, state, stack = [], {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target in graph[module]:
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in inside:
        if module not in state:
            visit(module)
    return cycles


MODULES = project_modules(ROOT)
IMPORTS = find_imports(MODULES)


def test_only_the_command_line_imports_cli():
    offenders = [f"{i.importer} (line {i.line})" for i in cli_imports(IMPORTS)]
    assert not offenders, (f"library modules import biomechgpt.cli: {', '.join(offenders)}; use biomechgpt.errors "
                           "and biomechgpt.commands.registry")


@pytest.mark.parametrize("package", ACYCLIC_PACKAGES)
def test_no_import_cycle_inside(package):
    cycles = import_cycles(MODULES, IMPORTS, package)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_no_private_name_crosses_a_module():
    found = private_imports(IMPORTS)
    assert not found - ALLOWED_PRIVATE_IMPORTS, (
        "private names imported from another module (make them public in their owner, or move them): "
        + "; ".join(f"{importer} imports {module}.{name}" for importer, module, name in
                    sorted(found - ALLOWED_PRIVATE_IMPORTS)))
    assert not ALLOWED_PRIVATE_IMPORTS - found, (
        f"allow-list entries that no longer occur, remove them: {sorted(ALLOWED_PRIVATE_IMPORTS - found)}")


def test_the_checks_find_what_they_forbid(tmp_path):
    # a small tree that breaks each rule once, and keeps it once where it is allowed
    files = {
        "biomechgpt/__init__.py": "from biomechgpt import __version__ as _v\n",
        "biomechgpt/cli.py": "from biomechgpt.errors import UsageError\n",
        "biomechgpt/errors.py": "class UsageError(Exception):\n    pass\n",
        "biomechgpt/commands/__init__.py": "",
        "biomechgpt/commands/run.py": "from biomechgpt.cli import UsageError\n",
        "biomechgpt/pipeline.py": "def run():\n    from biomechgpt import cli\n",
        "biomechgpt/evaluation/__init__.py": "from biomechgpt.evaluation.a import f\n",
        "biomechgpt/evaluation/a.py": "def f():\n    from biomechgpt.evaluation.b import g\n",
        "biomechgpt/evaluation/b.py": "from biomechgpt.evaluation import a\n\ndef g():\n    pass\n",
        "modeling/__init__.py": "",
        "modeling/model.py": "from ._helpers import _secret, public\n",
        "modeling/_helpers.py": "_secret = public = 1\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = project_modules(tmp_path, {"biomechgpt": "biomechgpt", "biomechgpt.modeling": "modeling"})
    imports = find_imports(modules)

    assert [(i.importer, i.line) for i in cli_imports(imports)] == [("biomechgpt.pipeline", 2)]
    assert import_cycles(modules, imports, "biomechgpt.evaluation") == [
        ["biomechgpt.evaluation.a", "biomechgpt.evaluation.b", "biomechgpt.evaluation.a"]]
    assert private_imports(imports) == {("biomechgpt.modeling.model", "biomechgpt.modeling._helpers", "_secret")}
