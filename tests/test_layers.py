"""The house rule (README, "Layout"): packages by layer, dependencies pointing down, imports inside functions
counted too. import-linter checks the contracts in pyproject.toml; grimp's graph (the same one) finds cycles;
the AST finds private names taken across modules."""

from __future__ import annotations

import ast
import contextlib
import io

import grimp
import pytest
from importlinter.cli import lint_imports

from conftest import ROOT

PACKAGE = ROOT / "nnlab"
FLAT_ENTRY_POINTS = {"__init__.py", "errors.py", "starter.py", "version.py"}


def test_the_layering_contracts_hold():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert code == 0, out.getvalue()[-4000:]


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's components of more than one module: each is an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph.find_modules_directly_imported_by(module):
            if target == "nnlab":  # every submodule's import runs the root package first: not a cycle
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_of_any_kind():
    assert strongly_connected(grimp.build_graph("nnlab")) == []


def private_names_taken() -> list[str]:
    """`from nnlab.x import _name` or `x._name` on an imported nnlab module, in another module."""
    taken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nnlab"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        taken.append(f"{path.relative_to(ROOT)}: from {node.module} import {alias.name}")
                    modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                modules.update(a.asname or a.name for a in node.names if a.name.startswith("nnlab"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                taken.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    return taken


def test_no_module_takes_another_modules_private_name():
    assert private_names_taken() == []


def test_no_flat_module_beyond_the_entry_points():
    flat = {p.name for p in PACKAGE.glob("*.py")}
    assert flat <= FLAT_ENTRY_POINTS, sorted(flat - FLAT_ENTRY_POINTS)


@pytest.mark.parametrize("package", sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()))
def test_every_package_says_what_it_owns_and_may_import(package):
    doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text())) or ""
    assert len(doc) > 80, f"nnlab/{package}/__init__.py needs a docstring: what it owns, what it may import"
    if package not in {"cli", "api"}:
        assert "import" in doc.lower(), f"nnlab/{package}: say what it may import"
