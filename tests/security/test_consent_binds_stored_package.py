"""A consent signs only the package the install names, never a file swapped in its place.

A stored package swapped behind the host's back never runs (`test_package_swap.py`): every start
hashes it against the consented content hash. But `stockade app consent` read the package back
from its stored path and signed whatever it found there: a re-confirm, or a narrowing
`--revoke` (which skips the publisher check, since taking grants away is always allowed),
turned another publisher's code, swapped into `packages/<hash>/package.zip`, into the consented
package, with no update diff shown. Now the package read must hash to the one the install (or
its pending update) records, or nothing is consented.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from apphelp import write_app
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.apps.operations import StoredPackageChanged, apply_consent, install_package
from host.apps.package_store import store_package
from host.apps.packages import package_from_files, read_package
from host.apps.publisher import TrustStore, check_signature, public_key_line, sign_package
from host.cli.main import root
from host.home import Home

HONEST = '''
from stockade import App

class TestApp(App):
    pass
'''

SWAPPED = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "not what the operator installed"
'''

PERMS = ["livechat.read", "users.read"]


def _signed(folder: Path, key: Ed25519PrivateKey) -> object:
    pkg = read_package(folder)
    return package_from_files(dict(pkg.files), sign_package(pkg, key))


def _installed(tmp_path: Path) -> tuple[Home, str]:
    """A trusted publisher's app, installed with both grants; then its stored package file is
    replaced by another key's package of the same id (other code, a later version)."""
    home = Home(tmp_path / "home").ensure()
    publisher = Ed25519PrivateKey.generate()
    raw = publisher.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    TrustStore(home.trust_dir).add("acme", public_key_line(raw))
    pkg = _signed(write_app(tmp_path / "v1", "swap-app", PERMS, ["livechat.room_started"],
                            HONEST), publisher)
    sig = check_signature(pkg, TrustStore(home.trust_dir))  # type: ignore[arg-type]
    assert sig.status == "trusted"
    rec = install_package(home, pkg, sig, frozenset(PERMS),  # type: ignore[arg-type]
                          policy_revision=None)
    other = write_app(tmp_path / "other", "swap-app", PERMS, ["livechat.room_started"], SWAPPED)
    (other / "app.toml").write_text((other / "app.toml").read_text()
                                    .replace('version = "1.0.0"', 'version = "1.0.1"'))
    staged = store_package(tmp_path / "staging",
                           _signed(other, Ed25519PrivateKey.generate()))  # type: ignore[arg-type]
    shutil.copyfile(staged, rec.package_path)
    return home, rec.install_id


def test_a_narrowing_consent_never_signs_a_swapped_package(tmp_path: Path) -> None:
    home, install_id = _installed(tmp_path)
    before = InstallStore(home.host_store).get(install_id)
    assert before is not None
    r = CliRunner().invoke(root, ["--home", str(home.root), "app", "consent", "swap-app",
                                  "--revoke", "users.read", "--yes"])
    # Before the fix: exit 0, and the install named the swapped package, signed by the
    # unknown key, as consented (version 1.0.1), with no diff and no publisher check.
    assert r.exit_code == 1, r.stderr
    assert "changed behind the host's back" in r.stderr
    after = InstallStore(home.host_store).get(install_id)
    assert after is not None
    assert (after.package_hash, after.version, after.grants, after.consent_id) == (
        before.package_hash, "1.0.0", frozenset(PERMS), before.consent_id)
    assert after.publisher["status"] == "trusted"


def test_apply_consent_refuses_a_package_the_install_does_not_name(tmp_path: Path) -> None:
    """The library call the console's approval also goes through refuses it too."""
    home, install_id = _installed(tmp_path)
    with InstallStore(home.host_store) as store:
        rec = store.get(install_id)
        assert rec is not None
        pkg = read_package(rec.package_path)
        sig = check_signature(pkg, TrustStore(home.trust_dir))
        with pytest.raises(StoredPackageChanged, match="behind the host's back"):
            apply_consent(home, store, rec, pkg, sig, frozenset({"livechat.read"}),
                          kind="regrant", policy_revision=None, diff=None, before=rec.grants)
        after = store.get(install_id)
        assert after is not None and after.package_hash == rec.package_hash
