"""The code's shape, as the design draws it: layers that import downwards only, no cycles, small modules."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "labeling"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts}


MODULES = _sources()


def _imports(name: str) -> set[str]:
    """The labeling modules `name` imports, at any level of its code (a function's own imports too)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(GRAPH):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_no_module_imports_itself_back_through_others():
    assert _cycle() is None, " -> ".join(_cycle() or [])


@pytest.mark.parametrize("layer", ["labeling.access", "labeling.db"])
def test_access_and_the_data_layer_import_no_services(layer):
    below = [name for name in GRAPH if name == layer or name.startswith(layer + ".")]
    offending = {name: sorted(t for t in GRAPH[name] if t.startswith("labeling.services")) for name in below}
    assert not {name: targets for name, targets in offending.items() if targets}


def test_the_services_import_no_views_api_or_commands():
    edges = ("labeling.views", "labeling.api", "labeling.management")
    offending = {
        name: sorted(t for t in GRAPH[name] if t.startswith(edges))
        for name in GRAPH
        if name.startswith(("labeling.services", "labeling.db"))
    }
    assert not {name: targets for name, targets in offending.items() if targets}


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long
