"""Username patterns, matched by RE2: time linear in the input, whatever the pattern says.

Python's `re` backtracks: one pattern the linter did not flag froze every app's gate, the
watchdog and REST for 15.8 s on a 200-character username. RE2 has no backtracking (and so no
backreferences or lookaround: such a pattern does not compile, and the linter says so).
"""
from __future__ import annotations

from typing import Protocol

import re2  # type: ignore[import-untyped]

# Pattern length. Guards: compile time and memory on a hostile file, and a reviewer's ability
# to read what a rule allows; a real username pattern is a few dozen characters.
MAX_PATTERN = 512
# RE2's memory budget for one compiled pattern. Guards: repetition blow-up such as
# `((a{99}){99}){99}`, which compiles to a program too large to keep (RE2 refuses it).
MAX_MEM = 1 << 20


class Pattern(Protocol):
    """What the engine and the policy diff use of a compiled RE2 pattern."""

    @property
    def pattern(self) -> str: ...

    def fullmatch(self, text: str) -> object | None: ...


class PatternError(ValueError):
    """The pattern is too long, or RE2 does not accept it (the message says why)."""


def _options() -> object:
    opts = re2.Options()
    opts.max_mem = MAX_MEM
    opts.log_errors = False  # the reason reaches the operator as a finding, not on stderr
    return opts


def compile_pattern(text: str) -> Pattern:
    """Compile a username pattern for `fullmatch`; raise PatternError with a plain reason."""
    if len(text) > MAX_PATTERN:
        raise PatternError(f"longer than {MAX_PATTERN} characters")
    try:
        compiled: Pattern = re2.compile(text, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"{reason} (patterns use RE2 syntax: no backreferences or "
                           "lookaround)") from None
    except (TypeError, ValueError) as exc:  # e.g. a NUL or lone surrogate in the text
        raise PatternError(str(exc)) from None
    return compiled


def full_match(pattern: Pattern, text: str) -> bool:
    """Does all of `text` match? Text RE2 cannot take (a lone surrogate) never matches."""
    try:
        return pattern.fullmatch(text) is not None
    except UnicodeError:
        return False
