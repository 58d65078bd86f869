"""Fuzz target: the app manifest parser and the package reader (in memory and as a .zip).

Documented outcomes: `host.apps.manifest.ManifestError` from `parse_manifest`, `host.apps.packages.
PackageError` from `package_from_files` / `read_package`. Anything else is a bug. The first byte
picks the surface: the manifest alone, an in-memory file map carved out of the input, or the
input written as a .zip file and read by `read_package`.

Run for an hour: `.venv/bin/python tests/fuzz/fuzz_manifest.py -max_total_time=3600`.
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from host.apps.manifest import ManifestError, parse_manifest
from host.apps.packages import PackageError, package_from_files, read_package

_TMP = Path(tempfile.mkdtemp(prefix="stockade-fuzz-manifest-"))
# Every process that imports the target (each test worker) made one and left it in /tmp.
atexit.register(shutil.rmtree, _TMP, True)
_ZIP = _TMP / "pkg.zip"

VALID_MANIFEST = b'''id = "fuzz-app"
name = "Fuzz"
version = "1.0.0"
author = "fuzz"
api = ">=1,<2"
entry = "main:App"
events = ["livechat.room_started"]

[[permission]]
name = "livechat.read"
reason = "read rooms"
'''


def _files(data: bytes) -> dict[str, bytes]:
    """Carve `name\\0content\\0name\\0content...` out of the input, manifest first."""
    parts = data.split(b"\0")
    files: dict[str, bytes] = {"app.toml": parts[0] if parts[0] else VALID_MANIFEST}
    for i in range(1, len(parts) - 1, 2):
        files[parts[i].decode("utf-8", "replace")[:300]] = parts[i + 1]
    return files


def fuzz_one(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    if mode == 0:
        try:
            parse_manifest(rest)
        except ManifestError:
            pass
    elif mode == 1:
        try:
            package_from_files(_files(rest))
        except PackageError:
            pass
    else:
        _ZIP.write_bytes(rest)
        try:
            read_package(_ZIP)
        except PackageError:
            pass
        finally:
            os.unlink(_ZIP)


if __name__ == "__main__":
    import atheris  # type: ignore[import-not-found]

    atheris.instrument_all()
    atheris.Setup(sys.argv, fuzz_one)
    atheris.Fuzz()
