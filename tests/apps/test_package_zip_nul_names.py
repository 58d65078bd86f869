"""A zip member whose name holds a NUL is refused, as the path rules say: `zipfile` cuts a
name at its first NUL when it reads the central directory (`ZipInfo.filename`), so the reader's
checks for NUL, control characters and `..` saw only the part before it. Before, a member stored
as `main.py\\0/../../etc/x` (or `main.py\\0.txt`) was accepted and loaded as `main.py`: the
package held another name than the one every check passed and the host loaded."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from apps_helpers import app_files

from host.apps.packages import PackageError, package_from_zip, read_package


def _zip_naming_main(stored: bytes) -> bytes:
    files = app_files()
    buf = io.BytesIO()
    stand_in = b"m" * len(stored)  # as long as the name stored: the offsets stay right
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.toml", files["app.toml"])
        zf.writestr(stand_in.decode(), files["main.py"])
    raw = buf.getvalue()
    assert raw.count(stand_in) == 2  # its local header and its central directory entry
    return raw.replace(stand_in, stored)


@pytest.mark.parametrize("stored", [b"main.py\x00/../../etc/x", b"main.py\x00.txt",
                                    b"main.py\x00"])
def test_a_name_holding_a_nul_is_refused(tmp_path: Path, stored: bytes) -> None:
    raw = _zip_naming_main(stored)
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:  # what zipfile makes of it
        assert [i.filename for i in zf.infolist()] == ["app.toml", "main.py"]
    with pytest.raises(PackageError, match="control characters"):
        package_from_zip(raw, "p.zip")
    path = tmp_path / "p.zip"
    path.write_bytes(raw)
    with pytest.raises(PackageError, match="control characters"):
        read_package(path)
