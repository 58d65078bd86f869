"""Ownership follows the install lineage and the publisher key (issue 19, DESIGN rule 11).

Ownership of app-created users, policy rules and quotas are keyed on the app id, a name the
package chose for itself. A package from another publisher that reused an uninstalled app's id
used to take over the users the first app created (kept at uninstall). The first install of an
id binds it to its publisher's verified key (or to "no verified publisher"); these tests attack
that through the real CLI: another key, or an unsigned package, claiming the id is refused as a
different app, at install and at the consent of an update, until the operator transfers the id
with `--transfer-publisher`, which is audited.
"""
from __future__ import annotations

import base64
import io
import json
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pytest
from apphelp import write_app
from typer.testing import CliRunner

from host.apps.packages import package_folder, package_from_files
from host.cli.main import root
from host.cli.output import err_console
from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.principals import Caller

SRC = "from stockade import App\n\nclass TestApp(App):\n    pass\n"
PERMS = ["users.create", "users.read"]


class Cli:
    def __init__(self, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.home, self.mp, self.runner = home, monkeypatch, CliRunner()

    def __call__(self, *args: str) -> tuple[int, str, str]:
        buf = io.StringIO()
        self.mp.setattr(err_console, "_file", buf)
        r = self.runner.invoke(root, ["--home", str(self.home), *args])
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return r.exit_code, r.stdout, r.stderr + buf.getvalue()


def _pkg(tmp: Path, name: str, version: str = "1.0.0") -> Path:
    folder = write_app(tmp / name, "crm", PERMS, [], SRC)
    toml = folder / "app.toml"
    toml.write_text(toml.read_text().replace('version = "1.0.0"', f'version = "{version}"'))
    _, data = package_folder(folder)
    out = tmp / f"{name}.zip"
    out.write_bytes(data)
    return out


def _signed(run: Cli, tmp: Path, name: str, key: str, version: str = "1.0.0") -> Path:
    pkg = _pkg(tmp, name, version)
    code, _, err = run("app", "sign", str(pkg), "--key", str(tmp / "keys" / key))
    assert code == 0, err
    return pkg


def _grants() -> list[str]:
    return [x for p in PERMS for x in ("--grant", p)]


def _audit(home: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(home / "host.db")
    try:
        return [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit ORDER BY seq")]
    finally:
        conn.close()


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    cli = Cli(tmp_path / "home", monkeypatch)
    (tmp_path / "keys").mkdir()
    for name in ("acme", "mallory"):
        code, _, err = cli("keys", "generate", str(tmp_path / "keys" / name))
        assert code == 0, err
        # The operator trusts both keys: trusting a key is not handing it every app id.
        code, _, err = cli("keys", "trust", str(tmp_path / "keys" / f"{name}.pub"),
                           "--name", name)
        assert code == 0, err
    return cli


def test_another_publisher_cannot_take_over_an_uninstalled_apps_id(
        run: Cli, tmp_path: Path) -> None:
    code, _out, err = run("app", "install", str(_signed(run, tmp_path, "acme-v1", "acme")),
                          "--json", *_grants())
    assert code == 0, err
    # The app creates a user, then is uninstalled with its users kept.
    server = EmbeddedServer(Home(run.home).server_db, SystemClock())
    kept = server.users_create(Caller(app_id="crm", install_id="x", app_user_id=None),
                               "crm-bot", "CRM bot", "bot", op_id="op_keep1")
    assert run("app", "uninstall", "crm", "--users", "keep", "--yes")[0] == 0
    # Mallory's package reuses the id: refused as a different app, whatever else is granted.
    code, _out, err = run("app", "install", str(_signed(run, tmp_path, "mallory", "mallory")),
                          "--json", *_grants())
    assert code == 1 and "different app" in err, err
    assert "--transfer-publisher" in err
    # An unsigned package claiming the id is refused the same way.
    code, _out, err = run("app", "install", str(_pkg(tmp_path, "unsigned")),
                          "--allow-unsigned", "--json", *_grants())
    assert code == 1 and "different app" in err, err
    assert run("app", "list", "--json")[1].strip() == "[]"
    assert server.user_created_by(kept["id"]) == "crm"
    # The first publisher may come back.
    code, _, err = run("app", "install", str(_signed(run, tmp_path, "acme-v2", "acme", "1.1.0")),
                       "--json", *_grants())
    assert code == 0, err


def test_an_unsigned_package_cannot_take_over_an_uninstalled_unsigned_apps_id(
        run: Cli, tmp_path: Path) -> None:
    """"No verified publisher" names nobody: two unsigned packages share that binding without
    sharing an author, so the second one reusing the id took over the users the first kept."""
    code, _, err = run("app", "install", str(_pkg(tmp_path, "first")), "--allow-unsigned",
                       *_grants())
    assert code == 0, err
    server = EmbeddedServer(Home(run.home).server_db, SystemClock())
    kept = server.users_create(Caller(app_id="crm", install_id="x", app_user_id=None),
                               "crm-bot", "CRM bot", "bot", op_id="op_keep1")
    assert run("app", "uninstall", "crm", "--users", "keep", "--yes")[0] == 0
    code, _, err = run("app", "install", str(_pkg(tmp_path, "second", "2.0.0")),
                       "--allow-unsigned", *_grants())
    assert code == 1 and "may be a different app" in err and "--transfer-publisher" in err, err
    assert run("app", "list", "--json")[1].strip() == "[]"
    # The operator who means it says so, and the chain records it.
    code, _, err = run("app", "install", str(_pkg(tmp_path, "second", "2.0.0")),
                       "--allow-unsigned", "--transfer-publisher", *_grants())
    assert code == 0, err
    assert [b for b in _audit(run.home) if b.get("code") == "publisher_transfer"]
    assert server.user_created_by(kept["id"]) == "crm"
    # Updating the running unsigned install is not a new lineage: no transfer asked.
    code, _, err = run("app", "update", "crm", str(_pkg(tmp_path, "third", "2.0.1")),
                       "--allow-unsigned")
    assert code == 0, err


def test_an_explicit_transfer_is_audited(run: Cli, tmp_path: Path) -> None:
    assert run("app", "install", str(_signed(run, tmp_path, "acme-v1", "acme")),
               *_grants())[0] == 0
    assert run("app", "uninstall", "crm", "--users", "keep", "--yes")[0] == 0
    code, _, err = run("app", "install", str(_signed(run, tmp_path, "mallory", "mallory")),
                       "--transfer-publisher", *_grants())
    assert code == 0, err
    transfers = [b for b in _audit(run.home) if b.get("code") == "publisher_transfer"]
    assert len(transfers) == 1 and transfers[0]["app_id"] == "crm"
    assert "transferred from publisher key" in transfers[0]["detail"]
    # Now the id is Mallory's: Acme's package is the different app.
    code, _, err = run("app", "uninstall", "crm", "--users", "keep", "--yes")
    assert code == 0, err
    code, _, err = run("app", "install", str(_signed(run, tmp_path, "acme-v2", "acme", "1.1.0")),
                       *_grants())
    assert code == 1 and "different app" in err


def test_an_update_from_another_key_needs_the_transfer_at_consent(
        run: Cli, tmp_path: Path) -> None:
    assert run("app", "install", str(_signed(run, tmp_path, "acme-v1", "acme")),
               *_grants())[0] == 0
    code, out, err = run("app", "update", "crm",
                         str(_signed(run, tmp_path, "mallory", "mallory", "1.1.0")), "--json")
    assert code == 1 and json.loads(out)["status"] == "pending"
    assert "--transfer-publisher" in err
    code, _, err = run("app", "consent", "crm", *_grants())
    assert code == 1 and "different app" in err, err
    info = json.loads(run("app", "info", "crm", "--json")[1])
    assert info["version"] == "1.0.0"
    code, _, err = run("app", "consent", "crm", "--transfer-publisher", *_grants())
    assert code == 0, err
    assert json.loads(run("app", "info", "crm", "--json")[1])["version"] == "1.1.0"
    assert [b for b in _audit(run.home) if b.get("code") == "publisher_transfer"]


def test_an_install_made_before_bindings_existed_keeps_its_binding_at_uninstall(
        run: Cli, tmp_path: Path) -> None:
    assert run("app", "install", str(_signed(run, tmp_path, "acme-v1", "acme")),
               *_grants())[0] == 0
    # A home from before bindings: the install exists, its binding does not.
    conn = sqlite3.connect(run.home / "host.db")
    conn.execute("DELETE FROM app_lineage")
    conn.commit()
    conn.close()
    assert run("app", "uninstall", "crm", "--users", "keep", "--yes")[0] == 0
    code, _, err = run("app", "install", str(_signed(run, tmp_path, "mallory", "mallory")),
                       *_grants())
    assert code == 1 and "different app" in err, err


def test_an_unsigned_update_of_a_signed_app_waits_and_needs_the_transfer(
        run: Cli, tmp_path: Path) -> None:
    assert run("app", "install", str(_signed(run, tmp_path, "acme-v1", "acme")),
               *_grants())[0] == 0
    code, out, _ = run("app", "update", "crm", str(_pkg(tmp_path, "unsigned-v2", "1.0.1")),
                       "--allow-unsigned", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["status"] == "pending" and doc["diff"]["publisher_changed"]
    code, _, err = run("app", "consent", "crm", *_grants())
    assert code == 1 and "different app" in err, err
    assert json.loads(run("app", "info", "crm", "--json")[1])["version"] == "1.0.0"


def _claiming(pkg_zip: Path, kid: str, out: Path) -> Path:
    """`pkg_zip` with a SIGNATURE that only names `kid`: the right content hash, but a
    signature nobody made and an embedded key of zeros (no private key needed)."""
    with zipfile.ZipFile(pkg_zip) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist() if i.filename != "SIGNATURE"}
    content_hash = package_from_files(members).content_hash
    members["SIGNATURE"] = json.dumps({
        "format": "stockade-signature-v1", "kid": kid, "content_hash": content_hash,
        "public_key": base64.b64encode(b"\0" * 32).decode(),
        "signature": base64.b64encode(b"\1" * 64).decode()}).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    out.write_bytes(buf.getvalue())
    return out


def _kid_of(run: Cli, name: str) -> str:
    (key,) = [k for k in json.loads(run("keys", "list", "--json")[1]) if k.get("name") == name]
    return str(key["kid"])


@pytest.mark.parametrize("untrusted", ["acme", "vendor"])
def test_naming_the_installed_publishers_key_is_not_being_it(
        run: Cli, tmp_path: Path, untrusted: str) -> None:
    """A package whose SIGNATURE merely names the key id of the installed app's publisher (a
    key the operator untrusted since, or never trusted) is forged, not that publisher's next
    version: refused outright, never applied as an update without consent."""
    if untrusted == "vendor":
        assert run("keys", "generate", str(tmp_path / "keys" / "vendor"))[0] == 0
        code, out, err = run("app", "install", str(_signed(run, tmp_path, "v1", "vendor")),
                             "--allow-unsigned", "--json", *_grants())
        kid = json.loads(out)["install"]["publisher"]["kid"]
    else:
        code, _, err = run("app", "install", str(_signed(run, tmp_path, "v1", "acme")),
                           *_grants())
        kid = _kid_of(run, "acme")
        assert run("keys", "untrust", "acme")[0] == 0
    assert code == 0, err
    forged = _claiming(_pkg(tmp_path, "evil", "1.0.1"), kid, tmp_path / "forged.zip")
    code, out, err = run("app", "update", "crm", str(forged), "--allow-unsigned", "--json")
    assert code != 0 and "was not made by it" in err, err
    assert json.loads(run("app", "info", "crm", "--json")[1])["version"] == "1.0.0"


def test_a_signature_naming_a_key_with_terminal_escapes_is_refused(
        run: Cli, tmp_path: Path) -> None:
    forged = _claiming(_pkg(tmp_path, "evil"), "\x1b[2K\x1b[8m", tmp_path / "forged.zip")
    code, _, err = run("app", "install", str(forged), "--allow-unsigned", *_grants())
    assert code != 0 and "\x1b" not in err and "was not made by it" in err, err


def test_a_version_signed_by_a_key_no_longer_trusted_waits_for_the_transfer(
        run: Cli, tmp_path: Path) -> None:
    """The operator untrusted acme's key (say it leaked): a package it signed is another
    publisher to the host now, so it waits and needs `--transfer-publisher`; narrowing the
    running version's grants stays possible meanwhile."""
    assert run("app", "install", str(_signed(run, tmp_path, "v1", "acme")), *_grants())[0] == 0
    assert run("keys", "untrust", "acme")[0] == 0
    code, out, err = run("app", "update", "crm",
                         str(_signed(run, tmp_path, "v2", "acme", "1.0.1")),
                         "--allow-unsigned", "--json")
    assert code == 1 and json.loads(out)["status"] == "pending", err
    assert json.loads(out)["diff"]["publisher_changed"]
    code, _, err = run("app", "consent", "crm", *_grants())
    assert code == 1 and "different app" in err, err
    code, _, err = run("app", "consent", "crm", "--reject", "--yes")
    assert code == 0, err
    code, _, err = run("app", "consent", "crm", "--revoke", "users.create", "--yes")
    assert code == 0, err
    assert json.loads(run("app", "info", "crm", "--json")[1])["grants"] == ["users.read"]
