"""The packages of ``chalicelib`` depend on each other one way: no import cycle.

Every import counts, function-local and ``TYPE_CHECKING`` ones included: a
cycle that only type checking sees still ties two packages into one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "chalicelib"


def _unit(path: Path) -> str:
    """The package (or top-level module) of ``chalicelib`` a file belongs to."""
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def _imported_units(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "chalicelib" and len(parts) > 1:
                yield parts[1]


def package_graph() -> dict[str, set[str]]:
    """Unit -> the other units it imports."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        unit = _unit(path)
        if unit == "__init__":
            continue
        targets = graph.setdefault(unit, set())
        targets.update(other for other in _imported_units(path) if other != unit)
    return graph


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start, if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        unit, path = stack.pop()
        for other in sorted(graph.get(unit, ())):
            if other == start:
                return [*path, start]
            if other not in seen:
                seen.add(other)
                stack.append((other, [*path, other]))
    return None


def test_no_package_of_chalicelib_imports_one_that_imports_it_back() -> None:
    graph = package_graph()
    cycles = [cycle for unit in sorted(graph) if (cycle := _cycle_through(graph, unit))]
    assert not cycles, "import cycles between packages:\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


@pytest.mark.parametrize(
    ("low", "high"),
    [
        pytest.param("reasons", "policy", id="reason codes below the policy"),
        pytest.param("aws", "proxy", id="AWS adapters below the proxy"),
        pytest.param("aws", "ledger", id="AWS adapters below the ledger"),
        pytest.param("readable", "audit", id="text rules below the audit record"),
        pytest.param("ledger", "proxy", id="the ledger signs without the proxy"),
    ],
)
def test_lower_layers_never_import_higher_ones(low: str, high: str) -> None:
    assert high not in package_graph().get(low, set())


def test_the_graph_sees_type_checking_and_function_local_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from chalicelib.grants.model import Grant\n"
        "def later():\n"
        "    import chalicelib.ledger.state\n"
        "from . import sibling\n"
    )
    assert sorted(_imported_units(probe)) == ["grants", "ledger"]
