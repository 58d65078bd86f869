"""An update that applies at once keeps the REST identity the operator consented to (review
finding: it re-signed the consent without `rest_as`, so the operator's `--rest-as` choice was
silently dropped and the app's REST routes fell back to its own user). Only a consent that
verifies hands its identity on: a record edited behind the host's back carries none."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from apphelp import write_app

from host.apps.installs import InstallRecord, InstallStore
from host.apps.operations import install_package, submit_update
from host.apps.packages import read_package
from host.apps.publisher import TrustStore, check_signature
from host.home import Home

SRC = "from stockade import App\n\nclass TestApp(App):\n    pass\n"


def _version(folder: Path, version: str) -> Path:
    toml = folder / "app.toml"
    toml.write_text(toml.read_text().replace('version = "1.0.0"', f'version = "{version}"'))
    return folder


def _setup(tmp_path: Path) -> tuple[Home, InstallRecord]:
    home = Home(tmp_path / "home").ensure()
    pkg = read_package(write_app(tmp_path / "v1", "rr", ["server.rest"], [], SRC))
    rec = install_package(home, pkg, check_signature(pkg, TrustStore(home.trust_dir)),
                          frozenset({"server.rest"}), policy_revision=None, rest_as="svc")
    assert rec.rest_as == "svc"
    return home, rec


def _update(home: Home, tmp_path: Path, rec: InstallRecord) -> InstallRecord:
    pkg = read_package(_version(write_app(tmp_path / "v2", "rr", ["server.rest"], [], SRC),
                                "1.0.1"))
    with InstallStore(home.host_store) as store:
        diff = submit_update(home, store, rec, pkg,
                             check_signature(pkg, TrustStore(home.trust_dir)),
                             policy_revision=None)
        assert not diff.needs_consent
        after = store.get(rec.install_id)
    assert after is not None and after.version == "1.0.1"
    return after


def test_an_update_applied_at_once_keeps_the_operators_rest_identity(tmp_path: Path) -> None:
    home, rec = _setup(tmp_path)
    after = _update(home, tmp_path, rec)
    assert after.grants == frozenset({"server.rest"})
    assert after.rest_as == "svc"


def test_a_consent_that_does_not_verify_hands_on_no_identity(tmp_path: Path) -> None:
    """Attack: the row edited behind the host's back (its grants) no longer verifies against
    its consent; the update signs neither its grants nor the REST identity it names."""
    home, rec = _setup(tmp_path)
    with sqlite3.connect(home.host_db) as c:
        c.execute("UPDATE install_installs SET grants = '[]' WHERE install_id = ?",
                  (rec.install_id,))
    with InstallStore(home.host_store) as store:
        edited = store.get(rec.install_id)
    assert edited is not None
    after = _update(home, tmp_path, edited)
    assert after.grants == frozenset() and after.rest_as is None


def test_app_update_shows_the_rest_identity_the_update_keeps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`stockade app update` showed the new version's disclosure without the consented REST
    identity, so its server.rest line read "acts as the app's own server user ..., never as an
    admin" while the update applied at once kept acting as the user the operator named (fails
    before: no 'svc' on the screen)."""
    from typer.testing import CliRunner

    from host.cli.main import root
    from host.cli.output import err_console

    # rich reads COLUMNS once, when the console is made: one row a line, whatever it read then.
    monkeypatch.setattr(err_console, "_width", 1000)
    home, rec = _setup(tmp_path)
    v2 = _version(write_app(tmp_path / "v2", "rr", ["server.rest"], [], SRC), "1.0.1")
    r = CliRunner().invoke(root, ["--home", str(home.root), "app", "update", "rr", str(v2),
                                  "--allow-unsigned"])
    assert r.exit_code == 0, r.stderr
    assert "act as server user 'svc'" in r.stderr, r.stderr
    assert "acts as the app's own server user" not in r.stderr
    after = InstallStore(home.host_store).get(rec.install_id)
    assert after is not None and after.version == "1.0.1" and after.rest_as == "svc"


def test_a_reconfirm_never_signs_the_identity_of_an_older_consent_put_back(
        tmp_path: Path) -> None:
    """Attack: the operator named `svc` for the app's REST routes, then went back to the app's
    own user; whoever can write host.db points the install back at the consent naming `svc`.
    The app is disabled as tampered and its hint says to re-confirm with `app consent`: that
    re-confirm signed the put-back consent's identity afresh (fails before: the new consent
    named `svc`, and the app's REST routes ran as that user again)."""
    from typer.testing import CliRunner

    from host.apps.operations import apply_consent

    home, rec = _setup(tmp_path)  # consent 1 names svc
    pkg = read_package(rec.package_path)
    with InstallStore(home.host_store) as store:  # consent 2: back to the app's own user
        apply_consent(home, store, rec, pkg, check_signature(pkg, TrustStore(home.trust_dir)),
                      frozenset({"server.rest"}), kind="regrant", policy_revision=None,
                      diff=None, before=rec.grants, rest_as=None)
    with sqlite3.connect(home.host_db) as c:
        c.execute("UPDATE install_installs SET consent_id = ? WHERE install_id = ?",
                  (rec.consent_id, rec.install_id))
    from host.cli.main import root

    r = CliRunner().invoke(root, ["--home", str(home.root), "app", "consent", "rr",
                                  "--grant", "server.rest"])
    assert r.exit_code == 0, r.stderr
    after = InstallStore(home.host_store).get(rec.install_id)
    assert after is not None and after.grants == frozenset({"server.rest"})
    assert after.rest_as is None
