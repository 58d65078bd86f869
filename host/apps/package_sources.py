"""Reading a package's files, bounded: an author's folder, a `.zip` on disk or a zip's bytes.

Reading is hostile-input handling: nothing is followed, inflated or held past the caps of
`host.apps.package_rules`, and a bad package gets one `PackageError`. What the files mean (the
manifest, the entry module, the content hash) is `host.apps.packages`' business.
"""
from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

from host.apps.package_rules import (
    MAX_ARCHIVE_BYTES,
    MAX_FILES,
    SIGNATURE_NAME,
    Budget,
    PackageError,
    check_path,
    check_suffix,
    file_cap,
)

# In an author's folder, tool caches are skipped rather than refused (never in a zip).
_FOLDER_SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                               ".git", ".venv", "dist"})
_FOLDER_SKIP_FILES = frozenset({".DS_Store", ".gitignore"})


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


# ---- folders ------------------------------------------------------------------------------------

def read_folder(root: Path) -> tuple[dict[str, bytes], bytes | None]:
    budget = Budget()
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
            check_path(rel)
            if stat.S_ISDIR(st.st_mode):
                budget.entry(rel + "/")
                walk(Path(ent.path), rel + "/")
                continue
            if not stat.S_ISREG(st.st_mode):
                raise PackageError(
                    f"{rel!r} is not a regular file (device, fifo or socket); remove it"
                )
            check_suffix(rel)
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
        cap = file_cap(rel)
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

def read_zip(raw: bytes, path: str) -> tuple[dict[str, bytes], bytes | None]:
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
            return read_members(zf)
        except PackageError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError,
                NotImplementedError) as exc:  # zlib.error is an Exception subclass: below
            raise PackageError(f"{path} is a damaged zip ({exc}); rebuild it") from exc
        except Exception as exc:
            raise PackageError(f"{path} is a damaged zip ({type(exc).__name__}); rebuild it") \
                from exc


def read_members(zf: zipfile.ZipFile) -> tuple[dict[str, bytes], bytes | None]:
    budget = Budget()
    infos = zf.infolist()
    if len(infos) > MAX_FILES:
        raise PackageError(f"the package has more than {MAX_FILES} entries; remove files")
    # First pass: names, kinds and declared sizes, before decompressing a single byte.
    members: list[zipfile.ZipInfo] = []
    for info in infos:
        name = info.filename
        if info.orig_filename != name:  # zipfile cut the stored name at a NUL: check that one
            check_path(info.orig_filename)
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
        check_path(name.rstrip("/") if is_dir else name)
        budget.entry(name)
        if is_dir:
            continue
        check_suffix(name)
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
        cap = min(info.file_size, file_cap(info.filename))
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

