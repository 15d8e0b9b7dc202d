"""Imports flow one way (DESIGN.md, "Where things live"); this file says so.

Read with ast, so nothing is imported: bot/, notifiers/, store/, rules/ and sandbox/ (not
store/migrations/). Three checks: no import cycle between our modules, every import goes down
the layer table below, and no import of ours hides inside a function. Type-only imports count:
a cycle under `if TYPE_CHECKING:` is still two modules that know each other. Third-party imports
are ignored. An import of `a.b.c` is an edge to `a.b.c` only (Python also runs the package
`__init__` of `a` and `a.b`, but those are checked as modules in their own right).
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "notifiers", "store", "rules", "sandbox")
SKIPPED = ("store/migrations/",)
ANYTHING = None

# Layer -> what it may import besides itself, from the bottom up. A module belongs to the longest
# layer that is it or a package around it; `bot` alone is bot/__init__.py, so any other module
# under bot/ that no layer names (a stray flat bot/foo.py) belongs to no layer and fails. An entry
# is a layer or a single module (bot.worker.drains, for `request_drain`). No layer lists bot.cli:
# only bot.__main__ and the CLI itself import it.
LAYERS: dict[str, tuple[str, ...] | None] = {
    "rules": (),
    "store": ("rules",),
    "notifiers": ("store", "rules"),
    # The pywa adapter takes plain values (no settings), so that core's bootstrap, the one
    # place that wires adapters, can build the WhatsApp sender with the others.
    "bot.whatsapp": ("notifiers", "store", "rules"),
    "bot.core": ("bot.whatsapp", "notifiers", "store", "rules"),
    "bot.usecases": ("bot.core", "bot.whatsapp", "notifiers", "store", "rules"),
    "bot.worker": ("bot.usecases", "bot.core", "bot.whatsapp", "notifiers", "store", "rules"),
    "bot.webhooks": (
        "bot.usecases", "bot.worker.drains", "bot.whatsapp", "bot.core", "notifiers", "store",
        "rules",
    ),
    # The integration API (DESIGN.md: HTTP surfaces sit beside the webhooks).
    "bot.api": (
        "bot.usecases", "bot.worker.drains", "bot.whatsapp", "bot.core", "notifiers", "store",
        "rules",
    ),
    # The web console: another HTTP surface beside them.
    "bot.console": (
        "bot.usecases", "bot.worker.drains", "bot.whatsapp", "bot.core", "notifiers", "store",
        "rules",
    ),
    "bot.app": (
        "bot.webhooks", "bot.api", "bot.console", "bot.worker.drains", "bot.usecases",
        "bot.whatsapp", "bot.core", "notifiers", "store", "rules",
    ),
    "bot.cli": ANYTHING,
    "bot.__main__": ANYTHING,
    "sandbox": ("bot.core", "bot.whatsapp", "notifiers", "store", "rules"),
    "bot": (),
}
# Layers whose key names one module, not a package and everything under it.
EXACT_LAYERS = frozenset({"bot"})
# Where an import inside a function is allowed: the CLI loads its command groups lazily, and the
# app factory is the one composition point.
LOCAL_IMPORTS_ALLOWED = ("bot.cli", "bot.app")

FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


@dataclass(frozen=True)
class Import:
    path: str  # relative to the root, for messages
    line: int
    target: str  # the module depended on, resolved as described at the top
    local: bool  # inside a function or lambda


@dataclass(frozen=True)
class Module:
    name: str
    path: str
    imports: tuple[Import, ...]


# --- reading the tree -----------------------------------------------------------------------


def module_name(relative: Path) -> str:
    parts = relative.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def scan(
    root: Path, packages: Iterable[str] = PACKAGES, skipped: tuple[str, ...] = SKIPPED
) -> list[Module]:
    """Every module of `packages` under `root`, with the imports of ours that it makes."""
    packages = tuple(packages)
    files = [
        path.relative_to(root)
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
        if not path.relative_to(root).as_posix().startswith(skipped)
    ]
    names = {module_name(relative) for relative in files}
    return [read_module(root, relative, names, packages) for relative in files]


def read_module(root: Path, relative: Path, names: set[str], packages: tuple[str, ...]) -> Module:
    name = module_name(relative)
    tree = ast.parse((root / relative).read_text(encoding="utf-8"), filename=str(relative))
    package = name if relative.name == "__init__.py" else name.rpartition(".")[0]
    # dict.fromkeys: `from x import A, B` is one import of x, not two.
    imports = dict.fromkeys(
        Import(relative.as_posix(), node.lineno, target, local)
        for node, local in walk_imports(tree)
        for target in targets(node, package, names)
        if target.split(".")[0] in packages
    )
    return Module(name, relative.as_posix(), tuple(imports))


def walk_imports(node: ast.AST, local: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    """Every import under `node`, with whether a function or lambda encloses it."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, local
        else:
            yield from walk_imports(child, local or isinstance(child, FUNCTIONS))


def targets(node: ast.stmt, package: str, names: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:
        # Level 1 is the module's own package; each further dot goes one package up.
        anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    # `from pkg import name` depends on pkg.name when that is a module, otherwise on pkg.
    return [
        f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base
        for alias in node.names
    ]


def build_graph(modules: Iterable[Module]) -> dict[str, dict[str, Import]]:
    """Module -> module it imports -> the first import that says so (ours, existing, not self)."""
    modules = list(modules)
    graph: dict[str, dict[str, Import]] = {module.name: {} for module in modules}
    for module in modules:
        for imp in module.imports:
            if imp.target in graph and imp.target != module.name:
                graph[module.name].setdefault(imp.target, imp)
    return graph


# --- cycles ---------------------------------------------------------------------------------


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components; edges to nodes outside the graph are ignored."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def shortest_cycle(graph: Mapping[str, Iterable[str]], start: str, within: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside `within` (breadth first, names sorted)."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(set(graph[node]) & within):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    return []


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One shortest cycle through each module that is on a cycle, without repeats.

    Listing every elementary cycle can explode; this covers every module and every loop back to
    it, which is what a person needs to untangle the knot.
    """
    found: set[tuple[str, ...]] = set()
    for component in strongly_connected(graph):
        within = set(component)
        for node in component:
            cycle = shortest_cycle(graph, node, within)
            if cycle:
                # Start each cycle at its smallest name so that rotations compare equal.
                ring = cycle[:-1]
                first = ring.index(min(ring))
                ring = ring[first:] + ring[:first]
                found.add((*ring, ring[0]))
    return [list(cycle) for cycle in sorted(found)]


# --- layers ---------------------------------------------------------------------------------


def contains(outer: str, name: str) -> bool:
    return name == outer or name.startswith(outer + ".")


def layer_of(name: str) -> str | None:
    matching = [
        layer for layer in LAYERS
        if (name == layer if layer in EXACT_LAYERS else contains(layer, name))
    ]
    return max(matching, key=len, default=None)


def may_import(source: str, target: str) -> bool:
    layer = layer_of(source)
    if layer is None:
        return False
    allowed = LAYERS[layer]
    if allowed is ANYTHING or layer_of(target) == layer:
        return True
    return any(contains(entry, target) for entry in allowed)


def direction_violations(modules: Iterable[Module]) -> list[str]:
    modules = list(modules)
    names = {module.name for module in modules}
    lines = []
    for module in modules:
        layer = layer_of(module.name)
        if layer is None:
            lines.append(f"{module.path}:1: {module.name} belongs to no layer")
            continue
        for imp in module.imports:
            if not may_import(module.name, imp.target):
                lines.append(f"{imp.path}:{imp.line}: {layer} may not import {imp.target}"
                             + why_not(imp.target, names))
    return lines


def why_not(target: str, names: set[str]) -> str:
    if contains("bot.cli", target):
        return " (only bot.__main__ imports the CLI)"
    if target not in names:
        return " (no such module: moved?)"
    if layer_of(target) is None:
        return " (which belongs to no layer)"
    return ""


def local_import_violations(modules: Iterable[Module]) -> list[str]:
    return [
        f"{imp.path}:{imp.line}: imports {imp.target} inside a function"
        for module in modules
        if not any(contains(allowed, module.name) for allowed in LOCAL_IMPORTS_ALLOWED)
        for imp in module.imports
        if imp.local
    ]


def cycle_lines(graph: Mapping[str, Mapping[str, Import]]) -> list[str]:
    lines = []
    for cycle in find_cycles(graph):
        where = ", ".join(f"{graph[a][b].path}:{graph[a][b].line}" for a, b in pairwise(cycle))
        lines.append(f"{' -> '.join(cycle)}  [{where}]")
    return lines


def fail_listing(title: str, lines: list[str]) -> None:
    if lines:
        pytest.fail(f"{len(lines)} {title}:\n" + "\n".join(lines), pytrace=False)


# --- the checks on this project -------------------------------------------------------------


@pytest.fixture(scope="module")
def project() -> list[Module]:
    return scan(ROOT)


def test_the_scan_finds_the_project(project: list[Module]) -> None:
    names = {module.name for module in project}
    assert {"bot", "rules", "store", "notifiers"} <= names
    assert not any(name.startswith("store.migrations") for name in names)


def test_no_import_cycle(project: list[Module]) -> None:
    fail_listing("import cycles (module -> module -> ..., then where each import is)",
                 cycle_lines(build_graph(project)))


def test_imports_flow_one_way(project: list[Module]) -> None:
    fail_listing("imports against the layer table in tests/test_layers.py (DESIGN.md)",
                 direction_violations(project))


def test_no_function_local_imports_of_ours(project: list[Module]) -> None:
    fail_listing("imports of ours inside a function (split the module instead)",
                 local_import_violations(project))


# --- the checker checks itself --------------------------------------------------------------


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({}, []),
        ({"a": ["b"], "b": ["c"], "c": []}, []),
        ({"a": ["x"]}, []),
        ({"a": ["b"], "b": ["a"]}, [["a", "b", "a"]]),
        ({"a": ["a"]}, [["a", "a"]]),
        ({"c": ["a"], "a": ["b"], "b": ["c"]}, [["a", "b", "c", "a"]]),
        (
            {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["e"], "e": ["d", "a"]},
            [["a", "b", "c", "a"], ["d", "e", "d"]],
        ),
        ({"a": ["b", "c"], "b": ["a"], "c": ["a"]}, [["a", "b", "a"], ["a", "c", "a"]]),
    ],
    ids=["empty", "chain", "outside", "pair", "self", "triangle", "two-knots", "figure-eight"],
)
def test_find_cycles(graph: dict[str, list[str]], expected: list[list[str]]) -> None:
    assert find_cycles(graph) == expected


SYNTHETIC = {
    "pkg/__init__.py": "",
    "pkg/a.py": "import os\nfrom . import b\nfrom .b import thing\nfrom pkg import c, missing\n",
    "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import X\n",
    "pkg/c.py": "class C:\n    import pkg.sub\n\ndef f():\n    import json\n    import pkg.b\n",
    "pkg/sub/__init__.py": "from ..a import y\nfrom .. import sub\n",
    "pkg/migrations/x.py": "import pkg.a\n",
}


def test_scan_resolves_imports(tmp_path: Path) -> None:
    for relative, source in SYNTHETIC.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(source, encoding="utf-8")
    scanned = scan(tmp_path, ["pkg"], skipped=("pkg/migrations/",))
    modules = {module.name: module for module in scanned}
    found = {name: [(i.line, i.target, i.local) for i in m.imports] for name, m in modules.items()}
    assert found == {
        "pkg": [],
        "pkg.a": [(2, "pkg.b", False), (3, "pkg.b", False), (4, "pkg.c", False), (4, "pkg", False)],
        "pkg.b": [(3, "pkg.a", False)],
        "pkg.c": [(2, "pkg.sub", False), (6, "pkg.b", True)],
        "pkg.sub": [(1, "pkg.a", False), (2, "pkg.sub", False)],
    }
    assert find_cycles(build_graph(modules.values())) == [
        ["pkg.a", "pkg.b", "pkg.a"],
        ["pkg.a", "pkg.c", "pkg.b", "pkg.a"],
        ["pkg.a", "pkg.c", "pkg.sub", "pkg.a"],
    ]
    assert local_import_violations(modules.values()) == [
        "pkg/c.py:6: imports pkg.b inside a function"
    ]


def test_violations_name_file_line_and_reason() -> None:
    modules = [
        Module("bot.foo", "bot/foo.py", (Import("bot/foo.py", 1, "bot.cli", False),)),
        Module("bot.core.x", "bot/core/x.py", (
            Import("bot/core/x.py", 3, "bot.cli", False),
            Import("bot/core/x.py", 4, "bot.gone", False),
            Import("bot/core/x.py", 5, "store.tasks", True),
        )),
        Module("bot.cli.ops", "bot/cli/ops.py", (Import("bot/cli/ops.py", 9, "store.a", True),)),
        Module("bot.app", "bot/app.py", (Import("bot/app.py", 7, "bot.core.x", True),)),
        Module("bot.cli", "bot/cli/__init__.py", ()),
        Module("store.tasks", "store/tasks.py", ()),
    ]
    assert direction_violations(modules) == [
        "bot/foo.py:1: bot.foo belongs to no layer",
        "bot/core/x.py:3: bot.core may not import bot.cli (only bot.__main__ imports the CLI)",
        "bot/core/x.py:4: bot.core may not import bot.gone (no such module: moved?)",
    ]
    assert local_import_violations(modules) == [
        "bot/core/x.py:5: imports store.tasks inside a function"
    ]


@pytest.mark.parametrize(
    ("name", "layer"),
    [
        ("bot", "bot"),
        ("bot.foo", None),
        ("bot.core.settings", "bot.core"),
        ("bot.worker.drains", "bot.worker"),
        ("bot.cli.tasks", "bot.cli"),
        ("bot.__main__", "bot.__main__"),
        ("bot.application", None),
        ("rules.engine", "rules"),
        ("sandbox", "sandbox"),
    ],
)
def test_layer_of(name: str, layer: str | None) -> None:
    assert layer_of(name) == layer


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("rules.engine", "rules.text", True),
        ("rules.engine", "store.tasks", False),
        ("store.tasks", "notifiers.card", False),
        ("bot.webhooks.whatsapp", "bot.worker.drains", True),
        ("bot.webhooks.whatsapp", "bot.worker.timers", False),
        ("bot.webhooks.whatsapp", "bot.worker", False),
        ("bot.app", "bot.webhooks.slack", True),
        ("bot.core.bootstrap", "bot.usecases.delivery", False),
        ("bot.core.bootstrap", "bot.cli", False),
        ("bot.__main__", "bot.cli", True),
        ("bot.cli.tasks", "sandbox.stack", True),
        ("bot", "rules", False),
        ("bot.foo", "rules", False),
        ("sandbox.stack", "bot.usecases.delivery", False),
    ],
)
def test_may_import(source: str, target: str, allowed: bool) -> None:
    assert may_import(source, target) is allowed
