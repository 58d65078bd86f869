"""How long the dotted keys of a TOML text are, found before `tomllib` reads it.

`tomllib` keeps every prefix of a dotted key (`a.b.c = 1` keeps `a`, `a.b`, `a.b.c`), so one key
of n parts costs it n*n/2 key parts of memory and time: a 16 KiB line `a.a.a…a = 1` took 258 MiB
and 0.7 s, and a 256 KiB policy file (the loader's cap) would take about 66 GiB, killing a
serving host at its next reload. The scan here is linear and reads strings and comments as
TOML does, so only the dots of keys and table headers count.
"""
from __future__ import annotations

# The most dots one key or table header of an app's `app.toml` may hold: both readers of it (the
# host's `host.apps.manifest` and the author harness) refuse a deeper one before tomllib reads
# it. A package is a hostile author's, read at install (the console's upload too): a 32 KB
# manifest of one `a.a.a… = 1` took 1 GiB and 2 s, about 4 GiB at its 64 KiB cap. No manifest
# field nests deeper than two levels; the policy loader's MAX_DEPTH is the same 8.
MAX_KEY_DOTS = 8

# Characters of a bare key (TOML 1.0).
_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _string_end(text: str, i: int) -> int:
    """Index just past the string that opens at `text[i]` (a quote), or len(text) when it
    never ends (tomllib then reports the error)."""
    n = len(text)
    quote = text[i]
    if text.startswith(quote * 3, i):
        j = text.find(quote * 3, i + 3) if quote == "'" else _basic_ml_end(text, i + 3)
        if j < 0:
            return n
        j += 3
        while j < n and j - i < 8 and text[j] == quote:  # up to two quotes end the string
            j += 1
        return j
    j = i + 1
    while j < n and text[j] != quote and text[j] != "\n":
        j += 2 if quote == '"' and text[j] == "\\" else 1
    return min(j + 1, n)


def _basic_ml_end(text: str, i: int) -> int:
    """Index of the three double quotes that end a multi-line basic string whose body starts at
    `i`, or -1 (one pass: a backslash escapes the character after it)."""
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"' and text.startswith('"""', i):
            return i
        else:
            i += 1
    return -1


def deepest_key(text: str, limit: int) -> tuple[int, int] | None:
    """(line, column) of the first dot that makes a dotted key or table header longer than
    `limit` dots, or None when every key is within it."""
    n = len(text)
    i = 0
    line, line_start = 1, 0
    dots = 0  # dots in the key being read; anything but key parts, dots and spaces ends it
    after_part = False  # the last thing read (spaces aside) was a key part
    while i < n:
        ch = text[i]
        if ch == "\n":
            line, line_start = line + 1, i + 1
            dots, after_part = 0, False
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif ch in "\"'":
            end = _string_end(text, i)
            line += text.count("\n", i, end)
            if "\n" in text[i:end]:
                line_start = text.rfind("\n", i, end) + 1
                dots = 0
            after_part = True
            i = end
        elif ch in _BARE:
            while i < n and text[i] in _BARE:
                i += 1
            after_part = True
        elif ch == "." and after_part:
            dots += 1
            if dots > limit:
                return line, i - line_start + 1
            after_part = False
            i += 1
        elif ch in " \t":
            i += 1
        else:
            dots, after_part = 0, False
            i += 1
    return None
