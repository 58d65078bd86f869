"""What a package may hold: its caps, its path rules and the error every check raises.

Every rule here is hostile-input handling: a package's names and sizes are its author's choice.
`host.apps.package_sources` applies them while reading a folder or a zip,
`host.apps.packages` while validating an in-memory file map.
"""
from __future__ import annotations

import os
import re

from host.apps.manifest import MANIFEST_NAME

SIGNATURE_NAME = "SIGNATURE"

# ---- caps: each guards the host against one way a package can hurt it -------------------------
# The whole package is held in memory and copied into HOME: caps memory and disk per install.
MAX_TOTAL_BYTES = 2 * 1024 * 1024
# One file: caps the source the confined child has to compile (and memory while reading).
MAX_FILE_BYTES = 512 * 1024
# The icon is shown to operators; a large image is a decoder attack surface for UIs.
MAX_ICON_BYTES = 256 * 1024
# Entries, including directory entries: caps work spent on the central directory / folder walk.
MAX_FILES = 64
# Path components: deep trees serve no app and make path checks harder to reason about.
MAX_DEPTH = 4
MAX_PATH_LEN = 200
# The archive on disk: we refuse to open a huge file at all (central-directory bombs).
MAX_ARCHIVE_BYTES = 4 * 1024 * 1024
# SIGNATURE is a small JSON document.
MAX_SIGNATURE_BYTES = 4096

# Only these kinds of file may appear: code, text and one image format. Anything else (shared
# objects, .pth files, pickles) could be loaded by something that is not the confined child.
ALLOWED_SUFFIXES = frozenset({".py", ".md", ".txt", ".json", ".png"})
# Each path component: no leading dot (hidden files), no spaces, no backslashes, no colons.
_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


class PackageError(Exception):
    """The package is unacceptable. The message says what is wrong and what to do."""


# ---- path rules ---------------------------------------------------------------------------------

def check_path(name: str) -> list[str]:
    """Refuse every path that could escape the package root or collide; returns components."""
    shown = repr(name[:80])
    if not name:
        raise PackageError("the package has an entry with an empty name; rebuild it")
    if "\\" in name:
        raise PackageError(f"path {shown} contains a backslash; use '/' and rebuild the package")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise PackageError(f"path {shown} is absolute; package paths must be relative")
    if "\x00" in name or any(ord(c) < 32 for c in name):
        raise PackageError(f"path {shown} contains control characters")
    if len(name) > MAX_PATH_LEN:
        raise PackageError(f"path {shown}... is longer than {MAX_PATH_LEN} characters")
    parts = name.split("/")
    if any(p in ("..", ".") for p in parts):
        raise PackageError(f"path {shown} contains '..' or '.'; it could escape the package root")
    if len(parts) > MAX_DEPTH:
        raise PackageError(f"path {shown} is deeper than {MAX_DEPTH} levels; flatten the package")
    for p in parts:
        if not _COMPONENT_RE.fullmatch(p):
            raise PackageError(
                f"path {shown} has an unacceptable name {p[:40]!r} (letters, digits, '_', '-', "
                "'.'; no leading dot); rename it"
            )
    return parts


def check_suffix(name: str) -> None:
    if name in (MANIFEST_NAME, SIGNATURE_NAME):
        return
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in ALLOWED_SUFFIXES:
        allowed = ", ".join(sorted(ALLOWED_SUFFIXES))
        raise PackageError(
            f"file {name[:80]!r} has a type packages may not hold (allowed: {allowed}); remove it"
        )


class Budget:
    """Counts entries and bytes across the whole package."""

    def __init__(self) -> None:
        self.entries = 0
        self.total = 0
        self.seen: dict[str, str] = {}  # casefolded name -> name

    def entry(self, name: str) -> None:
        self.entries += 1
        if self.entries > MAX_FILES:
            raise PackageError(f"the package has more than {MAX_FILES} entries; remove files")
        folded = name.rstrip("/").casefold()
        if folded in self.seen:
            other = self.seen[folded]
            what = "twice" if other == name.rstrip("/") else f"twice ({other!r} and {name!r})"
            raise PackageError(
                f"the package holds {name[:80]!r} {what}; names must be unique even ignoring "
                "case (they would collide on some file systems); rebuild it"
            )
        self.seen[folded] = name.rstrip("/")

    def size(self, name: str, n: int) -> None:
        cap = file_cap(name)
        if n > cap:
            raise PackageError(f"file {name[:80]!r} is larger than {cap // 1024} KiB")
        self.total += n
        if self.total > MAX_TOTAL_BYTES:
            raise PackageError(
                f"the package is larger than {MAX_TOTAL_BYTES // (1024 * 1024)} MiB uncompressed"
            )


def file_cap(name: str) -> int:
    if name == SIGNATURE_NAME:
        return MAX_SIGNATURE_BYTES
    if name.lower().endswith(".png"):
        return MAX_ICON_BYTES
    return MAX_FILE_BYTES
