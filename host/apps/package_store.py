"""Writing packages to disk: a new file by atomic rename, and the host's stored copy of each."""
from __future__ import annotations

import errno
import hashlib
import os
import secrets
from pathlib import Path

from host.apps.packages import Package, build_zip


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
