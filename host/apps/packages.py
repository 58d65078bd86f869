"""Reading and writing app packages. Reading is hostile-input handling.

A package is a folder (an author's working copy) or a `.zip` holding `app.toml`, Python modules,
an optional PNG icon and a few text files. Every check below runs before anything is written
anywhere: a bad package gets one `PackageError` whose message says what is wrong and what to do,
and leaves no trace.

Content hash: sha256 over the sorted (path, bytes) pairs of every file except `SIGNATURE`, where
`app.toml` contributes its canonical form (the validated manifest as sorted JSON, without the
recorded `content_hash`). The manifest can therefore record the hash of the package it is in, and
re-formatting the TOML cannot change what was signed without changing the hash.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import secrets
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
from sandbox.loader import module_name_problem

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
# In an author's folder, tool caches are skipped rather than refused (never in a zip).
_FOLDER_SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                               ".git", ".venv", "dist"})
_FOLDER_SKIP_FILES = frozenset({".DS_Store", ".gitignore"})
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Fixed timestamp for deterministic zips (the earliest date the zip format can hold).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class PackageError(Exception):
    """The package is unacceptable. The message says what is wrong and what to do."""


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
        files, signature = _read_folder(path)
        return _validate(files, signature, str(path), check_recorded=False)
    if not stat.S_ISREG(st.st_mode):
        raise PackageError(f"{path} is neither a folder nor a .zip file")
    return package_from_zip(read_zip_bytes(path, st.st_size), str(path))


def read_zip_bytes(path: Path, size: int | None = None) -> bytes:
    """A package `.zip`'s bytes, refused above the archive cap before they are read, and never
    read past it. Only a regular file is read: the host reads a stored package at every app
    start (`host.supervise.appcode`), and one replaced by a link to /dev/zero or by a fifo
    (whoever can write HOME/packages) grew the host without bound or hung its start, where a
    swapped package must only be refused. `size`: the caller's stat, checked early."""
    too_big = f"{path} is larger than {MAX_ARCHIVE_BYTES // (1024 * 1024)} MiB"
    if size is not None and size > MAX_ARCHIVE_BYTES:
        raise PackageError(too_big)
    # O_NONBLOCK: opening a fifo must not wait for a writer (it is refused just below).
    flags = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise PackageError(f"cannot read {path}: {exc.strerror}; check the path") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PackageError(f"{path} is not a regular file; a package is a .zip file")
        if st.st_size > MAX_ARCHIVE_BYTES:
            raise PackageError(too_big)
        chunks: list[bytes] = []
        got = 0
        while got <= MAX_ARCHIVE_BYTES:  # a file that grows after the stat is cut here
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise PackageError(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if got > MAX_ARCHIVE_BYTES:
        raise PackageError(too_big)
    return b"".join(chunks)


def package_from_zip(raw: bytes, source: str) -> Package:
    """Read and validate a package from a `.zip`'s bytes (the checks of `read_package`)."""
    files, signature = _read_zip(raw, source)
    return _validate(files, signature, source)


def package_from_files(files: dict[str, bytes], signature: bytes | None = None) -> Package:
    """Validate an in-memory file map (the same checks as `read_package`)."""
    for name in files:
        _check_path(name)
    return _validate(dict(files), signature, "<memory>")


# ---- path rules ---------------------------------------------------------------------------------

def _check_path(name: str) -> list[str]:
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


def _check_suffix(name: str) -> None:
    if name in (MANIFEST_NAME, SIGNATURE_NAME):
        return
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in ALLOWED_SUFFIXES:
        allowed = ", ".join(sorted(ALLOWED_SUFFIXES))
        raise PackageError(
            f"file {name[:80]!r} has a type packages may not hold (allowed: {allowed}); remove it"
        )


class _Budget:
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
        cap = _file_cap(name)
        if n > cap:
            raise PackageError(f"file {name[:80]!r} is larger than {cap // 1024} KiB")
        self.total += n
        if self.total > MAX_TOTAL_BYTES:
            raise PackageError(
                f"the package is larger than {MAX_TOTAL_BYTES // (1024 * 1024)} MiB uncompressed"
            )


def _file_cap(name: str) -> int:
    if name == SIGNATURE_NAME:
        return MAX_SIGNATURE_BYTES
    if name.lower().endswith(".png"):
        return MAX_ICON_BYTES
    return MAX_FILE_BYTES


# ---- folders ------------------------------------------------------------------------------------

def _read_folder(root: Path) -> tuple[dict[str, bytes], bytes | None]:
    budget = _Budget()
    files: dict[str, bytes] = {}
    signature: bytes | None = None

    def walk(dir_fd_path: Path, prefix: str) -> None:
        nonlocal signature
        try:
            entries = sorted(os.scandir(dir_fd_path), key=lambda e: e.name)
        except OSError as exc:
            raise PackageError(f"cannot list {dir_fd_path}: {exc.strerror}") from exc
        for ent in entries:
            rel = prefix + ent.name
            st = ent.stat(follow_symlinks=False)  # lstat: a link is refused, never followed
            if stat.S_ISDIR(st.st_mode) and ent.name in _FOLDER_SKIP_DIRS:
                continue
            if stat.S_ISREG(st.st_mode) and (
                ent.name in _FOLDER_SKIP_FILES or ent.name.endswith((".pyc", ".pyo"))
            ):
                continue
            if stat.S_ISLNK(st.st_mode):
                raise PackageError(
                    f"{rel!r} is a symbolic link; packages may not hold links (copy the file)"
                )
            _check_path(rel)
            if stat.S_ISDIR(st.st_mode):
                budget.entry(rel + "/")
                walk(Path(ent.path), rel + "/")
                continue
            if not stat.S_ISREG(st.st_mode):
                raise PackageError(
                    f"{rel!r} is not a regular file (device, fifo or socket); remove it"
                )
            _check_suffix(rel)
            budget.entry(rel)
            data = _read_regular(Path(ent.path), rel)
            budget.size(rel, len(data))
            if rel == SIGNATURE_NAME:
                signature = data
            else:
                files[rel] = data

    walk(root, "")
    return files, signature


def _read_regular(path: Path, rel: str) -> bytes:
    """Read at most cap+1 bytes through an fd opened without following links."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise PackageError(f"cannot read {rel!r}: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between lstat and open
            raise PackageError(f"{rel!r} is not a regular file; remove it")
        cap = _file_cap(rel)
        chunks: list[bytes] = []
        got = 0
        while got <= cap:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > cap:
            raise PackageError(f"file {rel!r} is larger than {cap // 1024} KiB")
        return b"".join(chunks)
    finally:
        os.close(fd)


# ---- zips ---------------------------------------------------------------------------------------

def _read_zip(raw: bytes, path: str) -> tuple[dict[str, bytes], bytes | None]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError,
            NotImplementedError) as exc:  # a "version needed to extract" past zipfile's
        raise PackageError(f"{path} is not a readable zip file ({exc}); rebuild it") from exc
    except Exception as exc:  # whatever else a hostile archive makes zipfile raise: refused
        raise PackageError(f"{path} is not a readable zip file ({type(exc).__name__}); "
                           "rebuild it") from exc
    with zf:
        try:
            return _read_members(zf)
        except PackageError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError,
                NotImplementedError) as exc:  # zlib.error is an Exception subclass: below
            raise PackageError(f"{path} is a damaged zip ({exc}); rebuild it") from exc
        except Exception as exc:
            raise PackageError(f"{path} is a damaged zip ({type(exc).__name__}); rebuild it") \
                from exc


def _read_members(zf: zipfile.ZipFile) -> tuple[dict[str, bytes], bytes | None]:
    budget = _Budget()
    infos = zf.infolist()
    if len(infos) > MAX_FILES:
        raise PackageError(f"the package has more than {MAX_FILES} entries; remove files")
    # First pass: names, kinds and declared sizes, before decompressing a single byte.
    members: list[zipfile.ZipInfo] = []
    for info in infos:
        name = info.filename
        if info.orig_filename != name:  # zipfile cut the stored name at a NUL: check that one
            _check_path(info.orig_filename)
            raise PackageError(f"member {info.orig_filename[:80]!r} is read as another name")
        is_dir = name.endswith("/")
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise PackageError(
                f"member {name[:80]!r} is a symbolic link; packages may not hold links"
            )
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise PackageError(f"member {name[:80]!r} is not a regular file; remove it")
        _check_path(name.rstrip("/") if is_dir else name)
        budget.entry(name)
        if is_dir:
            continue
        _check_suffix(name)
        if info.flag_bits & 0x1:
            raise PackageError(f"member {name[:80]!r} is encrypted; packages may not be")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PackageError(
                f"member {name[:80]!r} uses an unsupported compression; use deflate or none"
            )
        budget.size(name, info.file_size)  # declared sizes, checked before any inflation
        members.append(info)
    # Second pass: inflate, counting real bytes (a header may lie about the size).
    files: dict[str, bytes] = {}
    signature: bytes | None = None
    for info in members:
        cap = min(info.file_size, _file_cap(info.filename))
        chunks: list[bytes] = []
        got = 0
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(65536)
                if not chunk:
                    break
                got += len(chunk)
                if got > cap:
                    raise PackageError(
                        f"member {info.filename[:80]!r} inflates beyond its declared size "
                        "(a zip bomb or a damaged archive); refusing it"
                    )
                chunks.append(chunk)
        if got != info.file_size:
            raise PackageError(f"member {info.filename[:80]!r} is truncated; rebuild the package")
        data = b"".join(chunks)
        if info.filename == SIGNATURE_NAME:
            signature = data
        else:
            files[info.filename] = data
    return files, signature


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
        files, signature = _read_members(zf)
    return _validate(files, signature, "<built package>")


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file and rename (no half-written packages).

    The temporary file is created new (`O_EXCL | O_NOFOLLOW`) under a random name: `app
    package -o` and `app sign` write beside a package that may sit in a folder its hostile
    author can write, who could plant a link at a predictable name (it was `.NAME.tmp-PID`,
    opened with `open(..., "wb")`) and have the operator's process write the zip through it
    into any file the operator may write. Mode 0666 less the umask, as `open` gave."""
    fd, tmp = -1, path
    for _ in range(16):  # a name taken (by chance, or planted) is never reused: another draw
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o666)
            break
        except FileExistsError:
            continue
    if fd < 0:
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(tmp))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # ours: created above, never a planted one
        raise


def store_package(packages_dir: Path, pkg: Package) -> Path:
    """Copy a validated package to packages_dir/<sha256 of its zip>/package.zip (atomic;
    idempotent).

    The folder is named by the zip's own bytes, `SIGNATURE` included, never by the content
    hash, which leaves the signature out: the same content stored with another signature (or
    none) would otherwise be written over an installed or pending package's file, and its
    record would read the other signature as its own. So a store only ever rewrites a file with
    the bytes it already holds (which refreshes its age for `package_gc`), and the appcode
    cache's key (the zip's SHA-256) is the folder's name. Folders stored before are named by
    the content hash; their records name them, so they are kept and read as they are."""
    data = build_zip(pkg)
    target_dir = packages_dir / hashlib.sha256(data).hexdigest()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "package.zip"
    write_atomic(target, data)
    return target
