"""App packages: what a package is, how it is validated, its content hash and its zip.

A package is a folder (an author's working copy) or a `.zip` holding `app.toml`, Python modules,
an optional PNG icon and a few text files. Every check runs before anything is written
anywhere: a bad package gets one `PackageError` whose message says what is wrong and what to do,
and leaves no trace. The caps and path rules are `host.apps.package_rules`, the bounded reading
of folders and zips `host.apps.package_sources`, the writing to disk `host.apps.package_store`.

Content hash: sha256 over the sorted (path, bytes) pairs of every file except `SIGNATURE`, where
`app.toml` contributes its canonical form (the validated manifest as sorted JSON, without the
recorded `content_hash`). The manifest can therefore record the hash of the package it is in, and
re-formatting the TOML cannot change what was signed without changing the hash.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from host.apps.loadfit import load_frame_problem
from host.apps.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    canonical_json,
    parse_manifest,
)
from host.apps.package_rules import SIGNATURE_NAME, check_path
from host.apps.package_rules import PackageError as PackageError  # raised by every reader here
from host.apps.package_sources import read_folder, read_members, read_zip, read_zip_bytes
from sandbox.loader import module_name_problem

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Fixed timestamp for deterministic zips (the earliest date the zip format can hold).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Package:
    """A validated package held in memory. `files` excludes `SIGNATURE`."""

    manifest: Manifest
    files: dict[str, bytes] = field(repr=False)
    content_hash: str
    signature: bytes | None = field(default=None, repr=False)
    source: str = ""

    @property
    def app_id(self) -> str:
        return self.manifest.id

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.files.values())


def read_package(path: Path) -> Package:
    """Read and validate a package folder or `.zip`. Raises PackageError and writes nothing."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise PackageError(f"cannot read {path}: {exc.strerror}; check the path") from exc
    if stat.S_ISDIR(st.st_mode):
        files, signature = read_folder(path)
        return _validate(files, signature, str(path), check_recorded=False)
    if not stat.S_ISREG(st.st_mode):
        raise PackageError(f"{path} is neither a folder nor a .zip file")
    return package_from_zip(read_zip_bytes(path, st.st_size), str(path))


def package_from_zip(raw: bytes, source: str) -> Package:
    """Read and validate a package from a `.zip`'s bytes (the checks of `read_package`)."""
    files, signature = read_zip(raw, source)
    return _validate(files, signature, source)


def package_from_files(files: dict[str, bytes], signature: bytes | None = None) -> Package:
    """Validate an in-memory file map (the same checks as `read_package`)."""
    for name in files:
        check_path(name)
    return _validate(dict(files), signature, "<memory>")


# ---- content ------------------------------------------------------------------------------------

def _validate(
    files: dict[str, bytes], signature: bytes | None, source: str, *, check_recorded: bool = True
) -> Package:
    """Manifest, text encodings, icon, entry module, and the recorded content hash.

    `check_recorded` is off for an author's folder: it may hold a stale hash from an unpacked
    zip, and its hash is recomputed anyway."""
    if MANIFEST_NAME not in files:
        raise PackageError(f"{source} has no {MANIFEST_NAME} at its root; add one (see "
                           "`stockade app new`)")
    try:
        manifest = parse_manifest(files[MANIFEST_NAME])
    except ManifestError as exc:
        raise PackageError(f"{exc}; fix the manifest and package again") from exc
    for name, data in files.items():
        if name.endswith(".py"):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PackageError(f"{name!r} is not UTF-8 text; save it as UTF-8") from exc
        elif name.lower().endswith(".png") and not data.startswith(_PNG_MAGIC):
            raise PackageError(f"{name!r} is not a PNG image; remove it or export it as PNG")
        _check_module_name(name)
    module, cls = manifest.entry_parts()
    source_text = files.get(f"{module}.py")
    if source_text is None:
        raise PackageError(
            f"entry module {module}.py (from entry = {manifest.entry!r}) is not in the package; "
            "add it at the package root or fix `entry`"
        )
    # A textual check only: untrusted source is never compiled in the host (DESIGN rule 5).
    if not re.search(rf"^class\s+{re.escape(cls)}\b", source_text.decode("utf-8"), re.M):
        raise PackageError(f"entry class {cls} is not defined at the top level of {module}.py")
    too_big = load_frame_problem(manifest, files)  # installed, it could never start
    if too_big is not None:
        raise PackageError(too_big)
    if manifest.icon is not None and manifest.icon not in files:
        raise PackageError(f"icon {manifest.icon!r} named in the manifest is not in the package")
    digest = content_hash(manifest, files)
    recorded = manifest.content_hash
    if check_recorded and recorded is not None and recorded != digest:
        raise PackageError(
            "the package's files do not match the content hash its manifest records: it was "
            "changed after packaging; get an intact copy from the publisher"
        )
    _check_stamp(manifest, files[MANIFEST_NAME], digest)
    return Package(manifest=manifest, files=files, content_hash=digest, signature=signature,
                   source=source)


def _check_module_name(name: str) -> None:
    """A top-level `.py` file is an app module (`host/supervise/appcode.py`): refuse one the
    child's loader would refuse. Files in folders (an author's tests) are never loaded."""
    if "/" in name or not name.lower().endswith(".py"):
        return
    problem = (module_name_problem(name[:-3]) if name.endswith(".py")
               else "a module's file name ends in '.py', in lowercase")
    if problem is not None:
        raise PackageError(f"module file {name[:80]!r} cannot be loaded: {problem}; rename it")


def content_hash(manifest: Manifest, files: dict[str, bytes]) -> str:
    """sha256 over sorted (path, bytes); app.toml counts as its canonical form (see module doc)."""
    h = hashlib.sha256(b"stockade-package-content-v1\0")
    for name in sorted(files):
        if name == SIGNATURE_NAME:
            continue
        data = canonical_json(manifest.canonical()) if name == MANIFEST_NAME else files[name]
        h.update(len(name).to_bytes(4, "big") + name.encode())
        h.update(len(data).to_bytes(8, "big") + hashlib.sha256(data).digest())
    return "sha256:" + h.hexdigest()


_CONTENT_HASH_LINE = re.compile(r"^content_hash\s*=.*\n?", re.M)


def stamp_manifest(text: str, digest: str) -> str:
    """Return the manifest text with `content_hash = digest` as its first line.

    Any previous top-level `content_hash` line is dropped (a TOML key after a table header would
    belong to that table, so the line goes first)."""
    body = _CONTENT_HASH_LINE.sub("", text)
    return f'content_hash = "{digest}"\n' + body


def _check_stamp(manifest: Manifest, text: bytes, digest: str) -> None:
    """Refuse a manifest that stamping would change. The host stores (and packages) a package
    with its manifest stamped (`stamp_manifest`), which drops every line opening with
    `content_hash =`; one inside a multi-line string can hold that string's closing quotes, so
    the stored manifest read otherwise than the one shown and consented to: the install
    succeeded and the app never ran (its stored copy fails its own hash)."""
    stamped_text = stamp_manifest(text.decode("utf-8"), digest).encode("utf-8")
    if len(stamped_text) > MAX_MANIFEST_BYTES:  # said so, not blamed on a line that is not there
        line = len(stamp_manifest("", digest).encode("utf-8"))
        raise PackageError(
            f"{MANIFEST_NAME} is too large: stored with the {line}-byte content hash line the "
            f"host adds, it is {len(stamped_text)} bytes, over the "
            f"{MAX_MANIFEST_BYTES // 1024} KiB limit; keep it to "
            f"{MAX_MANIFEST_BYTES - line} bytes (without a content hash line)")
    try:
        stamped = parse_manifest(stamped_text)
    except ManifestError:
        stamped = None
    if stamped is None or stamped.canonical() != manifest.canonical():
        raise PackageError(
            f"{MANIFEST_NAME} has a line starting with `content_hash` that is not the recorded "
            "hash (inside a string?): the host would store another manifest than this one; "
            "reword that line"
        )


def build_zip(pkg: Package, *, with_signature: bool = True) -> bytes:
    """A deterministic zip of the package: sorted names, fixed timestamps, fixed modes.

    The manifest is stamped with the content hash."""
    text = pkg.files[MANIFEST_NAME].decode("utf-8")
    members = dict(pkg.files)
    members[MANIFEST_NAME] = stamp_manifest(text, pkg.content_hash).encode("utf-8")
    if with_signature and pkg.signature is not None:
        members[SIGNATURE_NAME] = pkg.signature
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.create_system = 3
            zf.writestr(info, members[name], compresslevel=9)
    return buf.getvalue()


def package_folder(src: Path) -> tuple[Package, bytes]:
    """Read an author's folder and return (package, deterministic zip bytes)."""
    pkg = read_package(src)
    data = build_zip(pkg, with_signature=False)
    # Read back what we wrote: the zip must pass the same checks an operator's host will run.
    restamped = _read_back(data)
    return restamped, data


def _read_back(data: bytes) -> Package:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files, signature = read_members(zf)
    return _validate(files, signature, "<built package>")

