"""Map (table, index, key) paths of a TOML policy file to line and column numbers.

tomllib gives no positions, so findings would otherwise say only "somewhere in the file". This
scans the text for table headers (`[[rule]]`, `[rule.when]`, `[workspace]`) and `key =` lines;
the column is where the key (or the header's bracket) starts, 1-based, as editors count.
It is a locator, not a parser: a key inside a multi-line string may be mislocated, never
misread (the data itself always comes from tomllib).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

_KEY = re.compile(r"^\s*([A-Za-z0-9_.-]+|\"[^\"]*\")\s*=")
_AOT = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]")
_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")

Path_ = tuple[str | int, ...]
# Lines one array may span for `entry`. Guards: a scan per finding stays small on a hostile
# file (the file itself is capped by the loader); beyond it the key's position is used.
_MAX_ARRAY_LINES = 200
# (line, column), both 1-based; (0, 0) when unknown.
Pos = tuple[int, int]


class Locator:
    """Line and column numbers for paths like ("rule", 2, "when", "roles")."""

    def __init__(self, text: str) -> None:
        self._pos: dict[Path_, Pos] = {}
        self._text = text.splitlines()
        counters: dict[str, int] = {}
        table: Path_ = ()
        for lineno, line in enumerate(text.splitlines(), 1):
            if m := _AOT.match(line):
                name = m.group(1)
                counters[name] = counters.get(name, -1) + 1
                table = (name, counters[name])
            elif m := _TABLE.match(line):
                parts = m.group(1).split(".")
                head: Path_ = (parts[0],)
                if parts[0] in counters:
                    head = (parts[0], counters[parts[0]])
                table = head + tuple(parts[1:])
            elif m := _KEY.match(line):
                key = m.group(1).strip('"')
                path = table + tuple(key.split("."))
            else:
                continue
            if m.re is not _KEY:
                path = table
            # Column of the first non-blank character: the key or the header's `[`.
            column = len(line) - len(line.lstrip()) + 1
            self._pos.setdefault(path, (lineno, column))

    def pos(self, path: Sequence[str | int]) -> Pos:
        """(line, column) of `path`, or of its nearest located ancestor; (0, 0) when unknown."""
        p = tuple(path)
        while p:
            if p in self._pos:
                return self._pos[p]
            p = p[:-1]
        return (0, 0)

    def line(self, path: Sequence[str | int]) -> int:
        """The line of `path`, or of its nearest located ancestor; 0 when unknown."""
        return self.pos(path)[0]

    def entry(self, path: Sequence[str | int], value: str) -> Pos:
        """(line, column) of the list entry `value` under `path` (`roles = ["a", "admin"]`
        points at `"admin"`), searching from the key's line to the array's end; the key's own
        position when the entry is not found written as a plain string."""
        at = self.pos(path)
        if not at[0]:
            return at
        quoted = [f'"{value}"', f"'{value}'"]
        for lineno in range(at[0], min(at[0] + _MAX_ARRAY_LINES, len(self._text) + 1)):
            text = self._text[lineno - 1]
            if lineno > at[0] and (_KEY.match(text) or _TABLE.match(text) or _AOT.match(text)):
                break
            start = text.find("=") + 1 if lineno == at[0] else 0
            hits = [c for c in (text.find(q, start) for q in quoted) if c >= 0]
            if hits:
                return (lineno, min(hits) + 1)
        return at
