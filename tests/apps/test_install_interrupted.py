"""An install that fails or is interrupted part-way leaves no binding of its app id behind
(review finding: a Ctrl-C'd unsigned install bound the id, so its retry was refused as
"another app" and needed --transfer-publisher)."""
from __future__ import annotations

from pathlib import Path

import pytest
from apps_helpers import app_files, write_folder

from host.apps import operations
from host.apps.installs import InstallError, InstallStore
from host.apps.lineage import Lineage
from host.apps.operations import install_package
from host.apps.packages import package_folder, read_package
from host.apps.publisher import TrustStore, check_signature
from host.home import Home
from host.store import open_store


def _install(home: Home, tmp_path: Path, *, transfer: bool = False) -> None:
    folder = write_folder(tmp_path / "src", app_files(permissions=("livechat.read",)))
    package = read_package(tmp_path / "a.zip") if (tmp_path / "a.zip").exists() else None
    if package is None:
        (tmp_path / "a.zip").write_bytes(package_folder(folder)[1])
        package = read_package(tmp_path / "a.zip")
    install_package(home, package, check_signature(package, TrustStore(home.trust_dir)),
                    frozenset({"livechat.read"}), policy_revision=None, transfer=transfer)


def _binding(home: Home) -> tuple[str, int] | None:
    store = open_store(home.host_store)
    try:
        if not store.has_table("app_lineage"):
            return None
        with store.transaction() as c:
            row = c.execute("SELECT publisher, transfers FROM app_lineage WHERE app_id = ?",
                            ("agent-sync",)).fetchone()
    finally:
        store.close_all()
    return None if row is None else (str(row[0]), int(row[1]))


def _interrupt(*_a: object, **_k: object) -> None:
    raise KeyboardInterrupt


def _user_taken(*_a: object, **_k: object) -> None:
    raise InstallError("the username was taken meanwhile")


@pytest.mark.parametrize("where,fault", [
    ("store_package", _interrupt), ("make_consent", _interrupt),
    ("install_app_user", _interrupt), ("install_app_user", _user_taken)])
def test_a_failed_unsigned_install_leaves_the_id_unbound(tmp_path: Path, monkeypatch,
                                                         where: str, fault) -> None:
    home = Home(tmp_path / "home").ensure()
    real = getattr(operations, where)
    monkeypatch.setattr(operations, where, fault)
    with pytest.raises((KeyboardInterrupt, InstallError)):
        _install(home, tmp_path)
    assert _binding(home) is None
    with InstallStore(home.host_store) as store:
        assert store.list() == []
    monkeypatch.setattr(operations, where, real)
    _install(home, tmp_path)  # the retry needs no --transfer-publisher
    assert _binding(home) == ("unverified", 0)


def test_a_failed_transfer_leaves_the_old_binding(tmp_path: Path, monkeypatch) -> None:
    home = Home(tmp_path / "home").ensure()
    _install(home, tmp_path)
    with InstallStore(home.host_store) as store:
        [rec] = store.list()
        store.remove(rec.install_id)
    monkeypatch.setattr(operations, "install_app_user", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        _install(home, tmp_path, transfer=True)
    assert _binding(home) == ("unverified", 0)  # no transfer happened
    lineage = Lineage(home.host_store)
    lineage.close()
