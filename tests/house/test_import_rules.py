"""The house's import rules (docs/ARCHITECTURE.md, "Rooms and import rules"), checked on the source.

Every import counts: module level, inside functions and under `TYPE_CHECKING` alike, because a
circle that only the type checker follows still ties two modules that should stand in order.
The checks run on the parsed source, so they need nothing imported and fail the moment a
forbidden line is added (`test_a_forbidden_import_is_caught` proves each check can fail).
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("host", "sandbox", "policies")

# The rooms of `host/`, lowest first. A module may import its own room and the rooms below it,
# never a room above: the flow is app -> supervise -> gate -> ledger/server, never back.
HOST_LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"host", "host.clock", "host.errors", "host.home", "host.inert"}),
    frozenset({"host.store"}),
    frozenset({"host.keys"}),
    frozenset({"host.server"}),
    # A Rocket.Chat workspace over REST: built on the server's errors, shapes and events (and the
    # stand-in's sender on the embedded server); nothing in host.server may lean on it.
    frozenset({"host.server.remote"}),
    frozenset({"host.ledger"}),
    frozenset({"host.bridges"}),
    frozenset({"host.apps"}),
    frozenset({"host.gate"}),
    frozenset({"host.supervise"}),
    frozenset({"host.runtime", "host.rounds", "host.hostconfig", "host.doctor", "host.migrate",
               "host.mergeserver", "host.hostevents"}),
    frozenset({"host.demo", "host.bench", "host.console"}),
    frozenset({"host.cli"}),
)

# Standard modules that touch files, processes, the network or the clock. `policies/` is pure:
# a decision is a function of its inputs, so none of these may appear in it, except in the two
# modules that read the files a reviewer names (`loader.py`, `cases.py`) — the engine, the
# model, the linter, the diff and the formatter never do.
IO_MODULES = frozenset({
    "os", "io", "pathlib", "shutil", "socket", "subprocess", "sqlite3", "tempfile", "time",
    "threading", "asyncio", "urllib.request", "http", "httpx", "select", "signal", "glob",
    "fcntl", "mmap", "ctypes", "multiprocessing",
})
POLICY_FILE_READERS = frozenset({"policies.loader", "policies.cases"})
IO_CALLS = frozenset({"open", "print", "input", "exec", "eval", "compile", "__import__"})


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(tree: ast.AST, name: str, is_package: bool,
               modules: Iterable[str] = ()) -> set[str]:
    """Every module `tree` imports, absolute, wherever the import statement stands.

    `from pkg import sub` where `pkg.sub` is one of `modules` imports the module `pkg.sub`, not
    the names in `pkg/__init__.py` (whose own imports are its own edges).
    """
    known = set(modules)
    found: set[str] = set()
    base = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[: len(base) - node.level + 1]
                mod = ".".join([*stem, node.module] if node.module else stem)
            else:
                mod = node.module or ""
            subs = {f"{mod}.{alias.name}" for alias in node.names}
            found.update(subs & known if known else subs)
            if not known or subs - known:
                found.add(mod)
    return found


def load_sources(root: Path = ROOT) -> dict[str, tuple[ast.AST, bool]]:
    out: dict[str, tuple[ast.AST, bool]] = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            out[module_name(path)] = (ast.parse(path.read_text(), str(path)), path.name == "__init__.py")
    return out


def import_graph(sources: Mapping[str, tuple[ast.AST, bool]]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (names that are not modules are dropped)."""
    graph: dict[str, set[str]] = {}
    for name, (tree, is_pkg) in sources.items():
        deps = imports_of(tree, name, is_pkg, sources)
        graph[name] = {m for m in deps if m in sources and m != name}
    return graph


def room_of(module: str) -> int:
    """The layer index of a host module: its longest room prefix."""
    best = -1
    best_len = -1
    for i, layer in enumerate(HOST_LAYERS):
        for room in layer:
            if (module == room or module.startswith(room + ".")) and len(room) > best_len:
                best, best_len = i, len(room)
    if best < 0:
        raise AssertionError(f"{module} is in no room of HOST_LAYERS: add it to a room")
    return best


def layer_violations(graph: Mapping[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        if mod.startswith("sandbox"):
            bad += [f"{mod} imports {d} (sandbox never imports host)" for d in deps
                    if d.startswith("host")]
        elif mod.startswith("policies"):
            bad += [f"{mod} imports {d} (policies never imports host)" for d in deps
                    if d.startswith("host")]
        elif mod.startswith("host"):
            mine = room_of(mod)
            bad += [f"{mod} imports {d}, a room above it" for d in sorted(deps)
                    if d.startswith("host") and room_of(d) > mine]
    return bad


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def io_violations(sources: Mapping[str, tuple[ast.AST, bool]]) -> list[str]:
    bad = []
    for name, (tree, is_pkg) in sorted(sources.items()):
        if not name.startswith("policies") or name in POLICY_FILE_READERS:
            continue
        for mod in sorted(imports_of(tree, name, is_pkg)):
            if mod in IO_MODULES or mod.split(".")[0] in IO_MODULES:
                bad.append(f"{name} imports {mod} (policies/ does no I/O)")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in IO_CALLS):
                bad.append(f"{name} calls {node.func.id}() (policies/ does no I/O)")
    return bad


SOURCES = load_sources()
GRAPH = import_graph(SOURCES)


def test_sandbox_and_policies_never_import_host_and_rooms_only_import_downward() -> None:
    assert layer_violations(GRAPH) == []


def test_no_import_circles() -> None:
    assert circles(GRAPH) == []


def test_policies_do_no_io() -> None:
    assert io_violations(SOURCES) == []


def test_every_host_module_is_in_a_room() -> None:
    for mod in GRAPH:
        if mod.startswith("host"):
            room_of(mod)  # raises for a module in no room


@pytest.mark.parametrize(("module", "line", "check"), [
    ("sandbox.runtime", "from host.keys import tokens", "layers"),
    ("policies.engine", "from host.clock import Clock", "layers"),
    ("host.ledger.audit", "from host.gate.gate import Gate", "layers"),
    ("host.store.sqlite", "from host.apps.installs import InstallStore", "layers"),
    ("host.supervise.prefork", "    from host.runtime import Host", "layers"),
    ("host.supervise.delivery", "from host.supervise.pump import EventPump", "circles"),
    ("host.server.embedded", "from host.server.remote.server import RemoteServer", "layers"),
    ("policies.engine", "import os", "io"),
    ("policies.lint", "    x = open('f')", "io"),
])
def test_a_forbidden_import_is_caught(module: str, line: str, check: str) -> None:
    """Each check fails when a forbidden line is added (the tests above are not vacuous)."""
    tree, is_pkg = SOURCES[module]
    extra = ast.parse("def _planted():\n" + line if line.startswith("    ") else line)
    planted = ast.Module(body=[*tree.body, *extra.body], type_ignores=[])  # type: ignore[attr-defined]
    sources = {**SOURCES, module: (planted, is_pkg)}
    if check == "io":
        assert io_violations(sources)
        return
    graph = import_graph(sources)
    if check == "layers":
        assert layer_violations(graph)
    else:
        assert circles(graph)


# Modules still over the limit, each with the work that splits it. The test below fails both
# when another module grows past the limit and when one of these shrinks under it (then delete
# its line), so the list cannot go stale.
KNOWN_LONG: dict[str, str] = {}


def test_no_module_is_over_600_lines() -> None:
    long = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            n = len(path.read_text().splitlines())
            if n > 600:
                long[str(path.relative_to(ROOT))] = n
    assert set(long) == set(KNOWN_LONG), long
