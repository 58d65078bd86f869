"""Does a username pattern risk catastrophic backtracking? A conservative structural check.

Python's `re` backtracks; a pattern like `(a+)+$` takes exponential time on "aaaa…!". The engine
caps usernames (engine.MAX_USERNAME) but a reviewer should still never sign such a pattern.
"""
from __future__ import annotations

import importlib
from typing import Any

# Pattern length above which we ask for a simpler pattern. Guards: patterns too long to review.
MAX_REVIEWABLE = 200

# The stdlib's own regex parser (re._parser in 3.11+); typed loosely because it is private.
_parser: Any = importlib.import_module("re._parser")
_MAXREPEAT: int = int(_parser.MAXREPEAT)


def _first_literal(alt: list[Any]) -> int | None:
    if alt and str(alt[0][0]) == "LITERAL":
        return int(alt[0][1])
    return None


def _branch_overlaps(alts: list[list[Any]]) -> bool:
    firsts: set[int] = set()
    for alt in alts:
        f = _first_literal(alt)
        if f is None or f in firsts:  # empty or non-literal start: may overlap
            return True
        firsts.add(f)
    return False


def _has_variable_repeat(items: Any) -> bool:
    for op, av in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            lo, hi, sub = av
            if lo != hi or _has_variable_repeat(sub):
                return True
        elif name == "SUBPATTERN" and _has_variable_repeat(av[3]):
            return True
        elif name == "BRANCH" and any(_has_variable_repeat(a) for a in av[1]):
            return True
    return False


def _walk(items: Any, in_repeat: bool) -> str | None:
    for op, av in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            _lo, hi, sub = av
            repeats = hi > 1 or hi == _MAXREPEAT
            if repeats and _has_variable_repeat(sub):
                return "nested quantifiers (like (a+)+ or (.*)*)"
            why = _walk(sub, in_repeat or repeats)
            if why:
                return why
        elif name == "SUBPATTERN":
            why = _walk(av[3], in_repeat)
            if why:
                return why
        elif name == "BRANCH":
            if in_repeat and _branch_overlaps(av[1]):
                return "overlapping alternatives inside a repeat (like (a|a)* or (a|ab)*)"
            for alt in av[1]:
                why = _walk(alt, in_repeat)
                if why:
                    return why
        elif name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "backreferences"
        elif name in ("ASSERT", "ASSERT_NOT"):
            why = _walk(av[1], in_repeat)
            if why:
                return why
    return None


def backtracking_risk(pattern: str) -> str | None:
    """A reason the pattern may backtrack catastrophically, or None. Does not compile-check."""
    if len(pattern) > MAX_REVIEWABLE:
        return f"longer than {MAX_REVIEWABLE} characters (too long to review)"
    try:
        tree = _parser.parse(pattern)
    except Exception:  # compile errors are reported separately (STK022)  # noqa: BLE001 - any compile failure is a finding
        return None
    return _walk(tree, False)
