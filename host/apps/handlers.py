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


def entry_class_methods(pkg: Package) -> list[str] | None:
    """Names of the methods of the manifest's entry class, or None if it cannot be read."""
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
            return [n.name for n in node.body
                    if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return None


def check_handlers(pkg: Package) -> HandlerReport:
    report = HandlerReport()
    declared = set(pkg.manifest.events)
    for name in entry_class_methods(pkg) or []:
        if not name.startswith("on_") or name in HOOK_HANDLERS:
            continue
        event = EVENT_HANDLERS.get(name)
        if event is None:
            report.unknown.append(name)
        elif event not in declared:
            report.undeclared.append(name)
    return report


def suggestion(name: str) -> str:
    close = difflib.get_close_matches(name, sorted([*EVENT_HANDLERS, *HOOK_HANDLERS]), n=1,
                                      cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else \
        f"handlers are on_<event> for: {', '.join(sorted(EVENTS))}"
