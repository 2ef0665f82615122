"""The shape of the package (issue 25): no import cycle, every module named in the README's
Architecture section, none over ~400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "nnfuzz"
README = PACKAGE.parent / "README.md"
#: Past this a module holds more than one concept (nnfuzz/STYLE: one module per concept).
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(PACKAGE.parent).parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every nnfuzz module ``name`` imports, wherever the import statement is (top level,
    ``if TYPE_CHECKING``, inside a function): a lazy import is still a dependency."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if not node.level else ".".join(
                package[:len(package) - node.level + 1] + [node.module])
            named = {f"{base}.{alias.name}" for alias in node.names}
            # ``from package import module`` depends on the module, not on the package's code
            found |= named if named <= set(known) else named | {base}
    return {module for module in found if module in known and module != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert sum(map(len, graph.values())) > 100, "the walk found the imports"
    assert cycles(graph) == []


def test_the_cycle_check_sees_a_cycle_through_a_lazy_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_readme_architecture_names_every_module() -> None:
    text = README.read_text()
    section = text[text.index("## Architecture"):text.index("## Benchmarks")]
    unnamed = [name for name in modules() if name != "nnfuzz" and
               f"`{name.split('.')[-1]}`" not in section and f"`{name.split('.')[-1]}/`" not in section]
    assert unnamed == []


def test_no_module_is_over_400_lines() -> None:
    assert {name: length for name, path in modules().items()
            if (length := len(path.read_text().splitlines())) > MAX_LINES} == {}
