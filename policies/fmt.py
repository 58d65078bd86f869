"""Canonical, idempotent TOML for policy files (our own small emitter; no dependency).

Layout: top-level keys, [workspace], every [[rule]] (with [rule.when]), every [[quota]], each in
the file's order; keys in a fixed order; default values left out; strings escaped one way.
Comments survive: a comment is re-emitted before the table it was written in (comments inside a
table move to just above its header; a comment after a value on the same line is not kept).
"""
from __future__ import annotations

import re
import tomllib

from policies.model import PolicyFile, Quota, Rule

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_WIDTH = 100
WHEN_KEYS = ("user_types", "roles", "custom_field_keys", "any_user", "domains", "allow_private",
             "rest_routes", "rest_fields", "username_pattern")

Segment = tuple[str, int]


def toml_str(s: str) -> str:
    """A TOML basic string: escape backslash, quote and every control character."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _value(v: object, indent: str = "") -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, list):
        items = [_value(x) for x in v]
        one = "[" + ", ".join(items) + "]"
        if len(indent) + len(one) <= _WIDTH:
            return one
        return "[\n" + "".join(f"    {i},\n" for i in items) + "]"
    raise TypeError(f"cannot emit {type(v).__name__}")


def _kv(key: str, v: object) -> str:
    return f"{key} = {_value(v, ' ' * (len(key) + 3))}"


def _close(line: str, i: int, quote: str) -> int:
    """Index just past the end of the multi-line string `quote` that is open at `line[i]`, or
    -1 when it does not end on this line. Up to two quotes before the closing three belong to
    the string (`""""` ends a string whose last character is a quote)."""
    n = len(line)
    while i < n:
        if quote == '"""' and line[i] == "\\":
            i += 2
        elif line.startswith(quote, i):
            end = i + 3
            while end < n and end - i < 5 and line[end] == quote[0]:
                end += 1
            return end
        else:
            i += 1
    return -1


def _outside_strings(text: str) -> list[str]:
    """The lines of `text` that do not begin inside a multi-line string. A line of a
    multi-line string may read as a table header or a comment (`[[rule]]`, `# note`): counted
    as one, it moved every later comment to another table, so a reviewer's warning came out
    above a harmless rule (the text has parsed as TOML, so a simple scan suffices)."""
    out: list[str] = []
    inside: str | None = None  # the quotes of the multi-line string open at the line's end
    # TOML ends lines at LF (CRLF) only; `splitlines` also splits at U+2028, U+0085 and
    # others a string may hold raw, making a header of `"a\u2028[[rule]]"`.
    for line in text.split("\n"):
        i, n = 0, len(line)
        if inside is not None:
            i = _close(line, 0, inside)
            if i < 0:
                continue
            inside = None
        else:
            out.append(line)
        while i < n:
            ch = line[i]
            if ch == "#":
                break
            if line.startswith('"""', i) or line.startswith("'''", i):
                quote = line[i:i + 3]
                i = _close(line, i + 3, quote)
                if i < 0:
                    inside = quote
                    break
            elif ch in "\"'":
                i += 1
                while i < n and line[i] != ch:
                    i += 2 if ch == '"' and line[i] == "\\" else 1
                i += 1
            else:
                i += 1
    return out


def _table_of(line: str) -> str | None:
    """The top-level table a header line opens (`[[rule]]`, `[rule.when]` -> "rule"), or None
    for any other line. Read by tomllib itself: a header may quote or escape its keys
    (`[["rule"]]`, `[["\\u0072ule"]]`) and space them (`[ rule . when ]`), and one this missed
    moved every later comment to another rule. The line is outside any multi-line string and
    the file has parsed, so no key here is deeper than the loader allows."""
    if not line.startswith("["):
        return None
    try:
        data = tomllib.loads(line)
    except tomllib.TOMLDecodeError:
        return None
    return next(iter(data), None)


def _comments(text: str) -> tuple[dict[Segment, list[str]], list[str]]:
    """Comment lines grouped by the table they belong to; trailing comments separately."""
    seg: Segment = ("top", 0)
    counts: dict[str, int] = {}
    groups: dict[Segment, list[str]] = {}
    pending: list[str] = []
    for line in _outside_strings(text):
        s = line.strip()
        if s.startswith("#"):
            pending.append(s)
            continue
        if not s:
            continue
        name = _table_of(s)
        if name is not None:
            if s.startswith("[["):
                counts[name] = counts.get(name, -1) + 1
            seg = (name, counts.get(name, 0))
        if pending:
            groups.setdefault(seg, []).extend(pending)
            pending = []
    return groups, pending


def _rule(r: Rule) -> list[str]:
    out = ["[[rule]]", _kv("id", r.id), _kv("effect", r.effect), _kv("apps", r.apps),
           _kv("actions", r.actions)]
    if r.description:
        out.append(_kv("description", r.description))
    when = [(k, getattr(r.when, k)) for k in WHEN_KEYS]
    when = [(k, v) for k, v in when if v is not None and v is not False]
    if when:
        out += ["", "[rule.when]"] + [_kv(k, v) for k, v in when]
    return out


def _quota(q: Quota) -> list[str]:
    out = ["[[quota]]", _kv("id", q.id), _kv("apps", q.apps), _kv("action", q.action),
           _kv("limit", q.limit)]
    out.append(_kv("window", q.window) if q.window is not None else _kv("window_s", q.window_s))
    out.append(_kv("scope", q.scope))
    if q.description:
        out.append(_kv("description", q.description))
    return out


def format_policy(pf: PolicyFile, original_text: str = "") -> str:
    """The canonical text of a validated file; comments from `original_text` are carried over."""
    groups, trailing = _comments(original_text)
    blocks: list[list[str]] = []

    def with_comments(seg: Segment, lines: list[str]) -> list[str]:
        return groups.get(seg, []) + lines

    top = [_kv("schema", pf.schema_version), _kv("name", pf.name)]
    if pf.description:
        top.append(_kv("description", pf.description))
    blocks.append(with_comments(("top", 0), top))
    if pf.workspace is not None:
        ws = ["[workspace]"]
        if pf.workspace.max_active_app_users is not None:
            ws.append(_kv("max_active_app_users", pf.workspace.max_active_app_users))
        blocks.append(with_comments(("workspace", 0), ws))
    for i, r in enumerate(pf.rule):
        blocks.append(with_comments(("rule", i), _rule(r)))
    for i, q in enumerate(pf.quota):
        blocks.append(with_comments(("quota", i), _quota(q)))
    # Comments in tables that no longer exist (none today) must not be lost either.
    known = {("top", 0), ("workspace", 0)} | {("rule", i) for i in range(len(pf.rule))}
    known |= {("quota", i) for i in range(len(pf.quota))}
    orphans = [c for seg, cs in groups.items() if seg not in known for c in cs]
    tail = orphans + trailing
    if tail:
        blocks.append(tail)
    return "\n\n".join("\n".join(b) for b in blocks) + "\n"
