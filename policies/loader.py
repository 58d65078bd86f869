"""Read policy files (one file or a directory of *.toml) into one Policy, refusing hostile input.

Every problem becomes a Finding; nothing here raises on bad input except `load_policy`, which
raises PolicyLoadError carrying the findings. A set of files with any error or security-warning
finding is refused as a whole: a policy is never half-loaded, a broken file never degrades to
allow, and what `stockade policy check` calls refused is never enforced (the linter binds).
"""
from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from policies.findings import FAILING, Finding, failing, finding, sort_findings
from policies.lint import lint_set
from policies.locate import Locator
from policies.model import INT_MAX, INT_MIN, PolicyFile
from policies.policy import Policy, compile_policy
from policies.source import SourceFile
from policies.tomlkeys import deepest_key

# Per-file size cap. Guards: memory and parse time of the TOML parser, the locator and lint on
# a hostile file; a real policy is a few KiB.
MAX_FILE_BYTES = 256 * 1024
# Files per directory. Guards: a directory stuffed with files slowing every host start.
MAX_FILES = 256
# Nesting depth of values. Guards: recursion in validation and the emitter; the schema's
# deepest value is 4 levels (rule -> when -> list -> item).
MAX_DEPTH = 8
# Suffix of table-driven decision cases (policies/cases.py); never loaded as policy.
CASES_SUFFIX = ".cases.toml"

# tomllib ends its messages with the position; findings carry it as line:column instead.
TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


class PolicyLoadError(Exception):
    """Raised by `load_policy` when the files have any error or security-warning finding."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        errs = [f for f in findings if f.severity in FAILING]
        head = "; ".join(f"{f.location}: {f.code} {f.message}" for f in errs[:5])
        super().__init__(f"policy refused ({len(errs)} error(s) or security warning(s)): {head}")


@dataclass
class LoadResult:
    policy: Policy | None  # None when an error or security-warning finding refused the set
    findings: list[Finding]
    sources: list[SourceFile]


def nesting_depth(v: Any, d: int = 0) -> int:
    """How deep `v` nests (stops counting past MAX_DEPTH)."""
    if d > MAX_DEPTH:
        return d
    if isinstance(v, dict):
        return max((nesting_depth(x, d + 1) for x in v.values()), default=d + 1)
    if isinstance(v, list):
        return max((nesting_depth(x, d + 1) for x in v), default=d + 1)
    return d


_TYPE_ERRORS = ("_type", "string_type", "int_type", "bool_type", "list_type", "dict_type")


def validation_findings(name: str, exc: ValidationError, loc: Locator) -> list[Finding]:
    """One located finding per pydantic error (also used for *.cases.toml)."""
    out: list[Finding] = []
    for e in exc.errors():
        path = tuple(e["loc"])
        where = ".".join(str(p) for p in path) or "(file)"
        line = loc.pos(path)
        t = e["type"]
        ctx = e.get("ctx") or {}
        if t == "extra_forbidden":
            out.append(finding("STK004", name, line, f"unknown field {where!r} (not in schema 1)"))
        elif t in ("less_than_equal", "greater_than_equal") and ctx.get(
            "le", ctx.get("ge")
        ) in (INT_MAX, INT_MIN):
            out.append(finding("STK007", name, line, f"{where}: number outside [-2**31, 2**31)"))
        elif t.endswith(_TYPE_ERRORS) or t in ("model_type", "model_attributes_type"):
            out.append(finding("STK005", name, line, f"{where}: {e['msg']}"))
        else:
            out.append(finding("STK006", name, line, f"{where}: {e['msg']}"))
    return out


def toml_error(exc: tomllib.TOMLDecodeError, text: str) -> tuple[tuple[int, int], str]:
    """(line, column) and the words of a TOML syntax error; "end of document" is located
    just past the last character, where the missing part belongs."""
    msg = str(exc)
    if m := TOML_POS.search(msg):
        return (int(m.group(1)), int(m.group(2))), TOML_POS.sub("", msg).strip()
    if "(at end of document)" in msg:
        lines = text.split("\n")
        return (len(lines), len(lines[-1]) + 1), msg.replace("(at end of document)", "").strip()
    return (0, 0), msg


def key_too_deep(text: str, name: str) -> Finding | None:
    """STK008 for a dotted key or table header deeper than MAX_DEPTH, found before `tomllib`
    reads the text: it costs tomllib time and memory quadratic in the key's length
    (`policies.tomlkeys`; a 256 KiB key would take tens of GiB). Such a key could only nest
    values past MAX_DEPTH anyway."""
    at = deepest_key(text, MAX_DEPTH)
    if at is None:
        return None
    return finding("STK008", name, at, f"a dotted key or table header nests deeper than "
                   f"{MAX_DEPTH} levels")


def parse_text(text: str, name: str) -> tuple[SourceFile, list[Finding]]:
    """Parse and validate one file's text (no semantic lint)."""
    loc = Locator(text)
    src = SourceFile(name, text, None, loc)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        return src, [finding("STK001", name, 0, f"larger than {MAX_FILE_BYTES} bytes")]
    if (deep := key_too_deep(text, name)) is not None:
        return src, [deep]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at, msg = toml_error(exc, text)
        code = "STK003" if ("overwrite" in msg or "Cannot declare" in msg) else "STK002"
        return src, [finding(code, name, at, msg)]
    except RecursionError:
        return src, [finding("STK008", name, 0, "values nested too deeply to parse")]
    if nesting_depth(data) > MAX_DEPTH:
        return src, [finding("STK008", name, 0, f"values nested deeper than {MAX_DEPTH} levels")]
    try:
        src.model = PolicyFile.model_validate(data)
    except ValidationError as exc:
        return src, validation_findings(name, exc, loc)
    return src, []


def read_file(path: Path) -> tuple[str | None, list[Finding]]:
    """A policy or cases file's text, or STK001 saying why not: a regular file (no link, no
    FIFO, no device), at most MAX_FILE_BYTES read whatever its size, UTF-8."""
    name = str(path)
    try:
        st = os.lstat(path)
    except OSError as exc:
        return None, [finding("STK001", name, 0, f"cannot read: {exc.strerror or exc}")]
    if stat.S_ISLNK(st.st_mode):
        return None, [finding("STK001", name, 0, "is a symlink; policy files must be regular "
                              "files (a link could point the host at a file nobody reviewed)")]
    if not stat.S_ISREG(st.st_mode):
        return None, [finding("STK001", name, 0, "is not a regular file")]
    try:
        # O_NOFOLLOW: the lstat above and the open must see the same non-link file. O_NONBLOCK
        # and the fstat: a FIFO put in its place meanwhile neither blocks the open (a serving
        # host's upkeep, `policy test`) nor is read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None, [finding("STK001", name, 0, "is not a regular file")]
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, [finding("STK001", name, 0, f"cannot read: {exc.strerror or exc}")]
    if len(raw) > MAX_FILE_BYTES:
        return None, [finding("STK001", name, 0, f"larger than {MAX_FILE_BYTES} bytes (the cap "
                              "guards the parser against hostile files)")]
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError:
        return None, [finding("STK001", name, 0, "is not UTF-8 text")]


def policy_paths(
    paths: Iterable[str | os.PathLike[str]], extra: Collection[Path] = (),
) -> tuple[list[Path], list[Finding]]:
    """Expand directories into their *.toml files (not *.cases.toml), sorted by name. A path in
    `extra` inside a listed directory counts as one of its files even before it exists (`policy
    add` checks the folder as it will be, under the same cap)."""
    out: list[Path] = []
    findings: list[Finding] = []
    for p in map(Path, paths):
        if p.is_dir() and not p.is_symlink():
            names = {c for c in p.iterdir() if _is_policy_name(c.name)}
            names.update(e for e in extra if e.parent == p and _is_policy_name(e.name))
            files = sorted(names)
            if len(files) > MAX_FILES:
                findings.append(finding("STK001", str(p), 0, f"more than {MAX_FILES} files"))
                files = files[:MAX_FILES]
            if not files:
                findings.append(finding("STK032", str(p), 0, "no *.toml policy files here; "
                                        "everything will be denied"))
            out.extend(files)
        else:
            out.append(p)
    return out, findings


def is_toml_name(name: str) -> bool:
    """A name the policy folders hold files under: `*.toml`, not hidden. A hidden name is an
    editor's lock link (Emacs' `.#default.toml` while the file is open, which refused the whole
    home's policy as a symlink) or a backup, never a policy: what `ls` shows a reviewer is what
    is loaded (sudoers.d skips such names the same way)."""
    return name.endswith(".toml") and not name.startswith(".")


def _is_policy_name(name: str) -> bool:
    return is_toml_name(name) and not name.endswith(CASES_SUFFIX)


def load_sources(sources: Sequence[SourceFile], pre: Sequence[Finding] = ()) -> LoadResult:
    """Lint parsed sources as one set and compile them when nothing failing was found."""

    findings = list(pre) + lint_set(sources)
    findings = sort_findings(findings)
    policy = None
    if not failing(findings) and all(s.model for s in sources):
        policy = compile_policy([(s.name, s.model) for s in sources if s.model is not None])
    return LoadResult(policy, findings, list(sources))


def load(
    paths: Iterable[str | os.PathLike[str]], overlay: Mapping[Path, tuple[str, str]] | None = None,
) -> LoadResult:
    """Read, validate and lint files / directories; compile them into one Policy if clean.

    `overlay` maps a path to (text, name): that file is taken as holding `text` (named `name`
    in findings) whether or not it exists yet, every other file is listed and read exactly as
    the host reads it. `policy add` checks a file this way before copying it in, so it refuses
    whatever the host would refuse (a symlink, a non-UTF-8 file, the file cap)."""
    overlay = overlay or {}
    files, findings = policy_paths(paths, overlay.keys())
    sources: list[SourceFile] = []
    for path in files:
        if path in overlay:
            text, name = overlay[path]
        else:
            read, errs = read_file(path)
            findings.extend(errs)
            if read is None:
                continue
            text, name = read, str(path)
        src, errs = parse_text(text, name)
        findings.extend(errs)
        sources.append(src)
    return load_sources(sources, findings)


def load_policy(*paths: str | os.PathLike[str]) -> Policy:
    """Load files or directories into one Policy; raise PolicyLoadError on a failing finding."""
    res = load(paths)
    if res.policy is None:
        raise PolicyLoadError(res.findings)
    return res.policy


def load_policy_text(text: str, name: str = "<text>") -> Policy:
    """Load one policy from TOML text (tests, embedding); raise PolicyLoadError when failing."""
    src, findings = parse_text(text, name)
    res = load_sources([src], findings)
    if res.policy is None:
        raise PolicyLoadError(res.findings)
    return res.policy
