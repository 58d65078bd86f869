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


# RE2 program instructions, summed over a policy set's distinct username patterns (each counted
# once, a refused one as FAILED_COST). Guards: the host's memory and the time of every load,
# reload, `policy check` and `diff`. Each pattern within MAX_MEM was not enough: a 256 KiB file
# of 1,652 distinct patterns near that cap took 67 s and 880 MiB to load (about 8 bytes and
# 0.3 us per instruction), and a folder holds 256 such files. A real pattern is a few hundred
# instructions (`^ext-[a-z0-9-]{1,40}$` 163), a Unicode one tens of thousands
# (`^bot-[\p{L}\p{N}]{1,32}$` 42,979): this is thousands of the first, 24 of the second.
MAX_SET_PROGRAM = 1 << 20
# What a pattern RE2 refuses costs the budget: about the largest program MAX_MEM allows, whose
# refusal takes about as long to reach (milliseconds each).
FAILED_COST = 1 << 16


class Pattern(Protocol):
    """What the engine and the policy diff use of a compiled RE2 pattern."""

    @property
    def pattern(self) -> str: ...

    @property
    def programsize(self) -> int: ...

    def fullmatch(self, text: str) -> object | None: ...


class PatternError(ValueError):
    """The pattern is too long, or RE2 does not accept it (the message says why)."""


def _options(fold: bool) -> object:
    opts = re2.Options()
    opts.max_mem = MAX_MEM
    opts.log_errors = False  # the reason reaches the operator as a finding, not on stderr
    opts.case_sensitive = not fold
    return opts


def compile_pattern(text: str, *, fold: bool = False) -> Pattern:
    """Compile a username pattern for `fullmatch`; raise PatternError with a plain reason.

    `fold`: match regardless of case, as a forbid's pattern does. Guards: the server keeps
    usernames unique regardless of case and finds them so (`username_cf`), so "Support" is the
    name "support": a forbid of `support` read case-sensitively let an app take that name in
    another case. A permit's pattern keeps its case (it only narrows; folded, it would widen)."""
    if len(text) > MAX_PATTERN:
        raise PatternError(f"longer than {MAX_PATTERN} characters")
    try:
        compiled: Pattern = re2.compile(text, _options(fold))
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


class PatternBudget:
    """Compiles the username patterns of one policy set within MAX_SET_PROGRAM: a pattern met
    again is the same answer, and once the budget is spent every new pattern is refused
    without compiling (a PatternError saying so). The lint (STK022) and `compile_policy` each
    run one over the set's rules in the same order, so they refuse the same patterns."""

    def __init__(self) -> None:
        self.left = MAX_SET_PROGRAM
        self._seen: dict[tuple[str, bool], Pattern | PatternError] = {}

    def compile(self, text: str, *, fold: bool = False) -> Pattern:
        """`compile_pattern(text, fold=fold)` charged to the budget; raise PatternError past
        it. A pattern both a permit and a forbid use is two programs, each charged."""
        got = self._seen.get((text, fold))
        if got is None:
            got = self._charge(text, fold)
            self._seen[(text, fold)] = got
        if isinstance(got, PatternError):
            raise got
        return got

    def _charge(self, text: str, fold: bool) -> Pattern | PatternError:
        over = PatternError(f"the set's username patterns are over their budget of "
                            f"{MAX_SET_PROGRAM} RE2 instructions together (this one was not "
                            "compiled); use fewer or simpler patterns")
        if self.left <= 0:
            return over
        try:
            compiled = compile_pattern(text, fold=fold)
        except PatternError as exc:
            self.left -= FAILED_COST
            return exc
        self.left -= max(int(compiled.programsize), 1)
        return over if self.left < 0 else compiled
