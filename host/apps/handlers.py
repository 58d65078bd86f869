"""Catch an app author's misspelt handler at `app package` time, not at the first event.

A method `on_<x>` of the entry class that matches no event of the vocabulary and no lifecycle
hook is never called: the author meant another name (`on_livechat_room_start` for
`on_livechat_room_started`). The source is read with `ast`, never run.
"""
from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field

from host.apps.packages import Package
from policies.vocabulary import EVENTS
from sandbox.api import LIFECYCLE_HOOKS


def handler_for(event: str) -> str:
    """The method name the child calls for `event` (as `sandbox.api.handler_name`)."""
    return "on_" + event.replace(".", "_").replace("-", "_")


EVENT_HANDLERS: dict[str, str] = {handler_for(e): e for e in EVENTS}
HOOK_HANDLERS: frozenset[str] = frozenset(f"on_{h}" for h in LIFECYCLE_HOOKS)


@dataclass
class HandlerReport:
    unknown: list[str] = field(default_factory=list)  # refused: matches no event or hook
    undeclared: list[str] = field(default_factory=list)  # warned: event not in app.toml
    # Warned: events app.toml lists that the entry class has no handler for (the child answers
    # them "done, nothing"). Only said of a class deriving from `App` alone: a class deriving
    # from one of the app's own classes may inherit the handler.
    unhandled: list[str] = field(default_factory=list)


def _entry_class(pkg: Package) -> ast.ClassDef | None:
    module, cls = pkg.manifest.entry_parts()
    data = pkg.files.get(module.replace(".", "/") + ".py")
    if data is None:
        return None
    try:
        tree = ast.parse(data.decode("utf-8"))
    except (SyntaxError, UnicodeDecodeError, RecursionError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return node
    return None


def _methods(node: ast.ClassDef) -> list[str]:
    return [n.name for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def entry_class_methods(pkg: Package) -> list[str] | None:
    """Names of the methods of the manifest's entry class, or None if it cannot be read."""
    node = _entry_class(pkg)
    return None if node is None else _methods(node)


def check_handlers(pkg: Package) -> HandlerReport:
    report = HandlerReport()
    declared = set(pkg.manifest.events)
    node = _entry_class(pkg)
    methods = [] if node is None else _methods(node)
    for name in methods:
        if not name.startswith("on_") or name in HOOK_HANDLERS:
            continue
        event = EVENT_HANDLERS.get(name)
        if event is None:
            report.unknown.append(name)
        elif event not in declared:
            report.undeclared.append(name)
    if node is not None and all(_is_app(b) for b in node.bases):
        report.unhandled = [e for e in pkg.manifest.events if handler_for(e) not in methods]
    return report


def _is_app(base: ast.expr) -> bool:
    """`App` or `stockade.App`: a base that holds no handler."""
    return (isinstance(base, ast.Name) and base.id == "App") or \
        (isinstance(base, ast.Attribute) and base.attr == "App"
         and isinstance(base.value, ast.Name) and base.value.id == "stockade")


def suggestion(name: str) -> str:
    close = difflib.get_close_matches(name, sorted([*EVENT_HANDLERS, *HOOK_HANDLERS]), n=1,
                                      cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else \
        f"handlers are on_<event> for: {', '.join(sorted(EVENTS))}"
