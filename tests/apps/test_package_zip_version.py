"""A zip whose central directory asks for a newer "version needed to extract" than `zipfile`
reads is a package refusal (`PackageError`), as every other damaged zip is: `zipfile` raises
`NotImplementedError` for it while opening the archive, which the reader did not catch. Before,
`stockade app install`, `app sign` and `app info` said "unexpected NotImplementedError ...
please report it" (exit 1, not the input error's 2), the console's upload answered with the
error out of its handler, and the fuzz target's contract (only `PackageError`) was broken.
Found by mutating a valid package's bytes."""
from __future__ import annotations

from pathlib import Path

import pytest
from apps_helpers import app_files

from host.apps.packages import (
    PackageError,
    build_zip,
    package_from_files,
    package_from_zip,
    read_package,
)
from host.console.install import Refused, read_upload


def _asks_for_version(version: int) -> bytes:
    data = bytearray(build_zip(package_from_files(app_files())))
    at = data.find(b"PK\x01\x02")  # the first central directory header
    data[at + 6:at + 8] = version.to_bytes(2, "little")  # version needed to extract
    return bytes(data)


@pytest.mark.parametrize("version", [64, 99, 0xFFFF])
def test_a_zip_asking_for_a_newer_format_is_a_package_refusal(tmp_path: Path,
                                                               version: int) -> None:
    raw = _asks_for_version(version)
    path = tmp_path / "p.zip"
    path.write_bytes(raw)
    with pytest.raises(PackageError, match="not a readable zip"):
        read_package(path)  # app install, update, sign, info
    with pytest.raises(PackageError, match="not a readable zip"):
        package_from_zip(raw, "stored")  # every start (host.supervise.appcode)
    with pytest.raises(Refused, match="not a valid app package"):
        read_upload(raw)  # the console's upload
