"""A package whose SIGNATURE nests JSON arrays thousands deep (4 KiB of "[", under the
SIGNATURE cap) is refused as an unreadable signature: JSON decoding raised RecursionError, which
no caller expected, so the console's upload answered 500 with a traceback in the host's log and
`app install` printed a traceback instead of one line (exit 1, 2 or 3, never a traceback)."""
from __future__ import annotations

import re
from pathlib import Path

from apphelp import write_app
from conhelp import SRC, Served, signed_in
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.apps.package_rules import MAX_SIGNATURE_BYTES
from host.apps.packages import (
    build_zip,
    package_folder,
    package_from_files,
    package_from_zip,
)
from host.cli.main import root

DEEP = b"[" * (MAX_SIGNATURE_BYTES - 1)


def _field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert m is not None, name
    return m.group(1)


def _deeply_signed(tmp_path: Path) -> bytes:
    folder = write_app(tmp_path / "p", "deep-sig", ["livechat.read"], [], SRC)
    pkg = package_from_zip(package_folder(folder)[1], "deep")
    return build_zip(package_from_files(dict(pkg.files), DEEP))


def test_a_deeply_nested_signature_is_refused_not_an_error(served: Served,
                                                           tmp_path: Path) -> None:
    data = _deeply_signed(tmp_path)
    c = signed_in(served)
    r = c.post("/console/install", data={"csrf": _field(c.get("/console/install").text, "csrf")},
               files={"package": ("a.zip", data)}, headers={"Origin": served.url})
    assert r.status_code == 400 and "SIGNATURE is unreadable" in r.text, (r.status_code, r.text)
    pkg = tmp_path / "deep.zip"
    pkg.write_bytes(data)
    out = CliRunner().invoke(root, ["--home", str(served.home.root), "app", "install", str(pkg),
                                    "--allow-unsigned", "--grant", "livechat.read"])
    assert out.exit_code in (1, 2, 3) and isinstance(out.exception, SystemExit), out.exception
    assert "SIGNATURE is unreadable" in out.output, out.output
    with InstallStore(served.home.host_db) as store:
        assert store.by_app("deep-sig") is None
