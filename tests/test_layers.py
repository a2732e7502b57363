"""The package's imports form a DAG: core at the bottom (torch and the standard library only),
the CLI at the top, and no module reaches into another module's private names.

Every ``import`` statement is read with ``ast`` — including imports inside functions, which hide
cycles from the interpreter but not from a reader.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "digmat"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = (ast.parse(path.read_text()), path.name == "__init__.py")
    return out


def _imports(name: str, tree: ast.Module, is_package: bool) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) for every import in the module, absolute."""
    package = name if is_package else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, [alias.name for alias in node.names]))
    return found


def _unit(module: str) -> str:
    """The layer a module belongs to: ``digmat.<subpackage or module>``."""
    return ".".join(module.split(".")[:2])


def _graph(modules) -> dict[str, set[str]]:
    graph = defaultdict(set)
    for name, (tree, is_package) in modules.items():
        for module, _ in _imports(name, tree, is_package):
            if module.startswith("digmat.") and _unit(module) != _unit(name):
                graph[_unit(name)].add(_unit(module))
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.fixture(scope="module")
def modules():
    return _modules()


def test_layers_form_a_dag(modules):
    graph = _graph(modules)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
    assert not graph.get("digmat.core"), graph.get("digmat.core")
    users_of_cli = [u for u, targets in graph.items() if "digmat.cli" in targets]
    assert users_of_cli == [], users_of_cli
    # the torch-free data engine stays below the models and the tasks
    assert not graph["digmat.adsorption"] & {"digmat.models", "digmat.tasks", "digmat.pretrained", "digmat.systems", "digmat.core"}


def test_core_imports_only_torch_and_the_standard_library(modules):
    for name, (tree, is_package) in modules.items():
        if not name.startswith("digmat.core"):
            continue
        for module, _ in _imports(name, tree, is_package):
            top = module.split(".")[0]
            assert top in ("torch", "__future__", "digmat") or top in sys.stdlib_module_names, (name, module)
            assert not module.startswith("digmat.") or module.startswith("digmat.core"), (name, module)


def test_no_private_names_across_modules(modules):
    offences = []
    for name, (tree, is_package) in modules.items():
        for module, names in _imports(name, tree, is_package):
            if not module.startswith("digmat"):
                continue
            private_module = any(p.startswith("_") and not p.startswith("__") for p in module.split("."))
            if private_module and _unit(module) != _unit(name):
                offences.append((name, module))
            offences.extend((name, f"{module}.{n}") for n in names
                            if n.startswith("_") and not n.startswith("__") and module != name)
    assert offences == []


def test_the_checker_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
