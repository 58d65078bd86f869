"""Map (table, index, key) paths of a TOML policy file to line numbers.

tomllib gives no positions, so findings would otherwise say only "somewhere in the file". This
scans the text for table headers (`[[rule]]`, `[rule.when]`, `[workspace]`) and `key =` lines.
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


class Locator:
    """Line numbers for paths like ("rule", 2, "when", "roles")."""

    def __init__(self, text: str) -> None:
        self._lines: dict[Path_, int] = {}
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
            self._lines.setdefault(path, lineno)

    def line(self, path: Sequence[str | int]) -> int:
        """The line of `path`, or of its nearest located ancestor; 0 when unknown."""
        p = tuple(path)
        while p:
            if p in self._lines:
                return self._lines[p]
            p = p[:-1]
        return 0
