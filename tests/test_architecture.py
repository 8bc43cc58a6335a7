"""The shape of the house, checked from the import graph of every module under ``harness/``.

The graph is built by parsing each file with :mod:`ast`, not by importing it: nothing runs, and
every ``import``/``from ... import`` counts wherever it is written -- at module level, inside a
function, under ``if TYPE_CHECKING`` -- because an import moved into a function to dodge a cycle
is still the cycle. Relative imports are resolved; importing a package is importing its
``__init__``; ``from pkg import name`` is an import of ``pkg.name`` when that is a module, else
of ``pkg``. The parent packages Python initialises on the way are not edges: a package's own
modules import each other beneath its ``__init__`` all the time. The wings and what never
depends on what: docs/architecture.md.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 450

IO_LIBRARIES = (
    "gevent", "asyncio", "aiohttp", "socket", "ssl", "locust", "requests", "websocket", "websockets", "select",
    "selectors", "threading", "subprocess", "multiprocessing", "urllib.request", "http.client", "urllib3", "psutil",
    "flask",
)  # fmt: skip
LOOP_LIBRARIES = ("locust", "gevent")  # the load client's runtime: a server or a report tool must run without it


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` imports ``target`` (a harness module or an external dotted name) at ``line``."""

    source: str
    target: str
    line: int


@dataclass
class ImportGraph:
    """Who imports whom among the modules of one package tree."""

    files: dict[str, Path] = field(default_factory=dict)  # module name -> file
    edges: dict[str, list[Edge]] = field(default_factory=dict)  # module -> its imports of harness modules
    external: dict[str, list[Edge]] = field(default_factory=dict)  # module -> its imports of anything else
    unresolved: list[Edge] = field(default_factory=list)  # imports of a harness name that is no module

    def imports(self, module: str) -> set[str]:
        return {edge.target for edge in self.edges.get(module, [])}

    def under(self, package: str) -> list[str]:
        return sorted(m for m in self.files if _matches(m, (package,)))


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve(node: ast.ImportFrom, module: str, path: Path) -> str:
    """The absolute dotted name ``from <this> import ...`` refers to."""
    if not node.level:
        return node.module or ""
    package = _package_of(module, path).split(".")
    base = package[: len(package) - node.level + 1]  # "." is this package, ".." its parent...
    return ".".join([*base, *([node.module] if node.module else [])])


def _imported_names(tree: ast.AST, module: str, path: Path) -> Iterable[tuple[str, str | None, int]]:
    """(dotted module, name imported from it or None, line) for every import anywhere in the file."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, path)
            for alias in node.names:
                yield base, alias.name, node.lineno


def build_graph(root: Path, package: str = "harness") -> ImportGraph:
    graph = ImportGraph()
    for path in sorted((root / package).rglob("*.py")):
        graph.files[module_name(path, root)] = path
    for module, path in graph.files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        internal: dict[Edge, None] = {}  # ordered sets: "from m import a, b" is one import of m
        external: dict[Edge, None] = {}
        for base, name, line in _imported_names(tree, module, path):
            candidate = f"{base}.{name}" if name and name != "*" else base
            if candidate in graph.files:
                internal[Edge(module, candidate, line)] = None
            elif base in graph.files:
                internal[Edge(module, base, line)] = None
            elif _matches(base, (package,)):
                graph.unresolved.append(Edge(module, base, line))
            else:
                external[Edge(module, candidate, line)] = None
        graph.edges[module], graph.external[module] = list(internal), list(external)
    return graph


def cycles(graph: ImportGraph) -> list[tuple[list[str], list[Edge]]]:
    """(modules, one cycle as its edges) per strongly connected component with a cycle (Tarjan's algorithm).

    All the modules of a component reach each other; the cycle shown is the shortest through
    its first module, and fixing it shows the next one.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the module count (a few hundred)
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.imports(node):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph.files):
        if node not in index:
            visit(node)
    found = []
    for component in components:
        members = set(component)
        start = min(component)
        if len(component) > 1 or start in graph.imports(start):
            found.append((sorted(members), _cycle_through(graph, start, members)))
    return sorted(found)


def _cycle_through(graph: ImportGraph, start: str, members: set[str]) -> list[Edge]:
    """The shortest path start -> ... -> start inside one component (breadth first)."""
    came_by: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in sorted(graph.edges.get(node, []), key=lambda e: (e.target, e.line)):
                if edge.target not in members or edge.target in came_by:
                    continue
                came_by[edge.target] = edge
                if edge.target == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, came_by[path[0].source])
                    return path
                following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a component with a cycle always has one


def describe(cycle: list[Edge], graph: ImportGraph, root: Path = ROOT) -> str:
    steps = [f"{e.source} -> {e.target} ({graph.files[e.source].relative_to(root)}:{e.line})" for e in cycle]
    return "\n    ".join(steps)


def _matches(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def forbidden_imports(graph: ImportGraph, wing: str, harness: Callable[[str], bool], libraries: Iterable[str]) -> list[str]:
    """``file:line: target`` for each import in ``wing`` of a harness module ``harness(target)`` refuses,
    or of one of the ``libraries`` (a package and its submodules)."""
    libraries = tuple(libraries)
    found = []
    for module in graph.under(wing):
        where = graph.files[module].relative_to(ROOT)
        found += [f"{where}:{e.line}: {e.target}" for e in graph.edges[module] if harness(e.target)]
        found += [f"{where}:{e.line}: {e.target}" for e in graph.external[module] if _matches(e.target, libraries)]
    return found


def _any_of(*packages: str) -> Callable[[str], bool]:
    return lambda module: _matches(module, packages)


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return build_graph(ROOT)


# ---------------------------------------------------------------------------- the graph itself
def test_the_graph_resolves_relative_function_level_and_package_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "harness"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\nfrom .sub import thing\n")
    (pkg / "b.py").write_text("import json\n\ndef late():\n    from harness.sub.c import x\n    from . import a\n")
    (pkg / "sub" / "__init__.py").write_text("from .c import x as thing\n")
    (pkg / "sub" / "c.py").write_text("from .. import b\nimport locust.runners\n")
    g = build_graph(tmp_path)
    assert g.imports("harness.a") == {"harness.b", "harness.sub"}  # "thing" is a name: the package's __init__
    assert g.imports("harness.b") == {"harness.sub.c", "harness.a"}  # imports inside a function count
    assert g.imports("harness.sub") == {"harness.sub.c"}
    assert g.imports("harness.sub.c") == {"harness.b"}
    assert {e.target for e in g.external["harness.sub.c"]} == {"locust.runners"}
    assert not g.unresolved
    ((members, cycle),) = cycles(g)
    assert members == ["harness.a", "harness.b", "harness.sub", "harness.sub.c"]  # all reach each other
    assert [(e.source, e.target) for e in cycle] == [("harness.a", "harness.b"), ("harness.b", "harness.a")]
    assert "harness/b.py:5" in describe(cycle, g, root=tmp_path)  # the message names the line


def test_the_graph_covers_the_tree(graph: ImportGraph) -> None:
    for wing in ("protocol", "client", "emulator", "user", "reports", "webui"):
        assert graph.under(f"harness.{wing}"), wing
    assert "harness.reports.cli" in graph.imports("harness.cli")  # a function-level import is seen


# ---------------------------------------------------------------------------- the rules
def _refuse(found: list[str], rule: str) -> None:
    """Fail with the rule and one line per offence, without pytest's repr of the whole graph."""
    if found:
        pytest.fail(f"{rule}:\n  " + "\n  ".join(found), pytrace=False)


def test_every_harness_import_names_a_module(graph: ImportGraph) -> None:
    found = [f"{graph.files[e.source].relative_to(ROOT)}:{e.line}: {e.target}" for e in graph.unresolved]
    _refuse(found, "imports of harness modules that do not exist")


def test_no_import_cycle_in_harness(graph: ImportGraph) -> None:
    found = [f"{', '.join(members)}; one cycle:\n    {describe(cycle, graph)}" for members, cycle in cycles(graph)]
    _refuse(found, f"{len(found)} group(s) of modules in harness/ import each other")


def test_protocol_imports_no_other_wing_and_no_io(graph: ImportGraph) -> None:
    found = forbidden_imports(
        graph, "harness.protocol", lambda module: not _matches(module, ("harness.protocol",)), IO_LIBRARIES
    )
    _refuse(found, "harness/protocol must stay pure (no other wing, no I/O library)")


def test_emulator_stands_alone(graph: ImportGraph) -> None:
    found = forbidden_imports(
        graph, "harness.emulator", _any_of("harness.client", "harness.user", "harness.webui"), LOOP_LIBRARIES
    )
    _refuse(found, "harness/emulator must run on its own (no client, user, webui, locust, gevent)")


def test_reports_need_no_running_locust(graph: ImportGraph) -> None:
    found = forbidden_imports(
        graph,
        "harness.reports",
        _any_of("harness.user", "harness.client", "harness.emulator", "harness.webui"),
        LOOP_LIBRARIES,
    )
    _refuse(found, "harness/reports reads and writes files only (no user, client, emulator, webui, locust, gevent)")


def test_run_state_imports_only_leaves(graph: ImportGraph) -> None:
    """Everything on the Locust side reads the run state, so it must import nothing that could import it back."""
    assert "harness.user.state" in graph.files
    user_side = {m for m in graph.imports("harness.user.state") if _matches(m, ("harness.user", "harness.webui"))}
    assert user_side <= {"harness.user.metrics"}, user_side
    assert not graph.imports("harness.user.metrics"), "the counters import nothing of the harness"


def test_only_the_locustfile_imports_the_wiring(graph: ImportGraph) -> None:
    importers = {m for m in graph.files if "harness.user.wiring" in graph.imports(m)}
    assert importers == {"harness.user.locustfile"}, importers


def test_no_module_over_the_size_limit(graph: ImportGraph) -> None:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in graph.files.items()}
    over = sorted(((n, m) for m, n in sizes.items() if n > MAX_LINES), reverse=True)
    _refuse([f"{graph.files[m].relative_to(ROOT)}: {n}" for n, m in over], f"modules over {MAX_LINES} lines")
