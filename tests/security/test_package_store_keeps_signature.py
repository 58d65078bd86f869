"""Storing a package never rewrites another install's stored file (its `SIGNATURE` included).

Stored packages were kept at `packages/<content hash>/package.zip`, and the content hash leaves
out the `SIGNATURE` member. So storing the same content with another signature, or none,
rewrote the installed app's file: `app update` (or the console) with an unsigned copy of a
signed app stored it over the installed version's file before parking it for consent, and a
confirmed upload that an install made meanwhile turned into a duplicate was stored before it
was refused. `app info`, and everything else that reads the stored package's signature, then
saw the other one.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from apphelp import write_app
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

from host.apps.installs import InstallRecord, InstallStore
from host.apps.operations import install_package, submit_update
from host.apps.package_gc import STORED_GRACE_S, prune_packages
from host.apps.package_store import store_package
from host.apps.packages import (
    Package,
    build_zip,
    package_from_files,
    read_package,
)
from host.apps.publisher import TrustStore, check_signature, public_key_line, sign_package
from host.cli.main import root
from host.home import Home

CODE = '''
from stockade import App

class TestApp(App):
    pass
'''

PERMS = ["livechat.read"]


def _signed_install(tmp_path: Path) -> tuple[Home, Package, Package, InstallRecord]:
    """A trusted publisher's signed package, installed; and the same content unsigned."""
    home = Home(tmp_path / "home").ensure()
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    TrustStore(home.trust_dir).add("acme", public_key_line(raw))
    unsigned = read_package(write_app(tmp_path / "app", "same-app", PERMS, [], CODE))
    signed = package_from_files(dict(unsigned.files), sign_package(unsigned, key))
    assert signed.content_hash == unsigned.content_hash  # the signature is not content
    sig = check_signature(signed, TrustStore(home.trust_dir))
    assert sig.status == "trusted"
    rec = install_package(home, signed, sig, frozenset(PERMS), policy_revision=None)
    return home, signed, unsigned, rec


def test_storing_the_same_content_unsigned_leaves_the_installed_file(tmp_path: Path) -> None:
    home, signed, unsigned, rec = _signed_install(tmp_path)
    before = rec.package_path.read_bytes()
    assert before == build_zip(signed)
    other = store_package(home.packages_dir, unsigned)
    assert other != rec.package_path
    assert rec.package_path.read_bytes() == before
    assert read_package(rec.package_path).signature == signed.signature
    assert read_package(other).signature is None


def test_an_update_of_the_same_content_unsigned_leaves_the_installed_apps_signature(
        tmp_path: Path) -> None:
    """The same content unsigned, handed in as an update (`app update`, the console): parked
    for consent (another publisher), but stored first, over the installed version's file."""
    home, signed, unsigned, rec = _signed_install(tmp_path)
    sig = check_signature(unsigned, TrustStore(home.trust_dir))
    with InstallStore(home.host_store) as store:
        diff = submit_update(home, store, rec, unsigned, sig, policy_revision=None)
        after = store.get(rec.install_id)
    assert diff.needs_consent and after is not None and after.pending is not None
    assert after.package_path == rec.package_path
    assert read_package(rec.package_path).signature == signed.signature
    assert read_package(after.pending.package_path).signature is None
    r = CliRunner().invoke(root, ["--home", str(home.root), "app", "info", "same-app", "--json"])
    assert r.exit_code == 0, r.output
    now = json.loads(r.stdout)["publisher_now"]
    assert now["status"] == "trusted" and now["publisher"] == "acme", now


def test_the_package_gc_keeps_the_installed_file_and_removes_the_other(tmp_path: Path) -> None:
    home, _, unsigned, rec = _signed_install(tmp_path)
    other = store_package(home.packages_dir, unsigned)
    gone = prune_packages(home, now=time.time() + STORED_GRACE_S + 60)
    assert gone == [other.parent]
    assert rec.package_path.exists()


def test_storing_the_same_package_again_is_idempotent(tmp_path: Path) -> None:
    home, signed, _, rec = _signed_install(tmp_path)
    assert store_package(home.packages_dir, signed) == rec.package_path
    assert rec.package_path.read_bytes() == build_zip(signed)
