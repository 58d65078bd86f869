"""An update that applies at once (it widens nothing) is written only over the install it was
computed from (SECURITY: "two operators at once lose nothing and undo nothing"). It wrote the
settings, grants and consent it had computed from its first read whatever had landed since, so
a secret another operator rotated meanwhile (its old value leaked) was put back to the leaked
one, and a consent approved meanwhile was silently undone. Now it is refused with nothing
changed, in the console as in `app update`."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app
from conhelp import SRC, Served, signed_in
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.apps.packages import package_folder
from host.cli.main import root

SECRET = '\n[[setting]]\nkey = "crm_token"\ntype = "secret"\nlabel = "CRM token"\n'


def _field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert m is not None, name
    return m.group(1)


def _crm(s: Served, tmp_path: Path) -> tuple[str, Path]:
    """App crm 1.0.0 holding a secret, and a 1.1.0 that asks for less (applies at once)."""
    rec = install(s.home, write_app(tmp_path / "v1", "crm", ["livechat.read", "users.read"],
                                    [], SRC, SECRET))
    with InstallStore(s.home.host_db) as store:
        store.set_settings(rec.install_id, {"crm_token": "leaked"}, ["crm_token"])
    folder = write_app(tmp_path / "v11", "crm", ["livechat.read"], [], SRC, SECRET)
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', 'version = "1.1.0"')
    (folder / "app.toml").write_text(toml)
    return rec.install_id, folder


def _rotated_meanwhile(s: Served, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Another operator rotates the secret just before the update's write."""
    real = InstallStore.apply_update
    raced: list[bool] = []

    def rotate_first(self: InstallStore, install_id: str, **kw: Any) -> None:
        if not raced:
            with InstallStore(s.home.host_db) as other:
                other.set_settings(install_id, {"crm_token": "rotated"}, ["crm_token"])
            raced.append(True)
        real(self, install_id, **kw)

    monkeypatch.setattr(InstallStore, "apply_update", rotate_first)
    return raced


def _after(s: Served, iid: str) -> tuple[str, object]:
    with InstallStore(s.home.host_db) as store:
        rec = store.get(iid)
    assert rec is not None
    return rec.version, rec.settings.get("crm_token")


def test_a_console_update_never_puts_back_a_secret_rotated_meanwhile(
        served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    iid, folder = _crm(served, tmp_path)
    c = signed_in(served)
    page = c.get("/console/updates").text
    raced = _rotated_meanwhile(served, monkeypatch)
    r = c.post("/console/updates", data={"csrf": _field(page, "csrf"), "install_id": iid,
                                         "allow_unsigned": "yes"},
               files={"package": ("u.zip", package_folder(folder)[1])},
               headers={"Origin": served.url})
    assert raced, "the update never reached its write"
    assert _after(served, iid) == ("1.0.0", "rotated"), r.text
    assert r.status_code == 409 and "nothing changed" in r.text, r.text


def test_app_update_never_puts_back_a_secret_rotated_meanwhile(
        served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    iid, folder = _crm(served, tmp_path)
    raced = _rotated_meanwhile(served, monkeypatch)
    r = CliRunner().invoke(root, ["--home", str(served.home.root), "app", "update", "crm",
                                  str(folder), "--allow-unsigned"])
    assert raced, "the update never reached its write"
    assert _after(served, iid) == ("1.0.0", "rotated"), r.output
    assert r.exit_code == 1 and "nothing changed" in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception  # no trace
