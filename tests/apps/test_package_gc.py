"""Superseded packages are removed (a home updated daily grew by a package a day: the version an
update replaced, a rejected or replaced pending update, a failed install's package all stayed
under `HOME/packages/` for good), and nothing an install may still need is."""
from __future__ import annotations

import os
import time
from pathlib import Path

from apphelp import write_app

from host.apps.installs import InstallRecord, InstallStore
from host.apps.operations import install_package, reject_pending, submit_update
from host.apps.package_gc import STORED_GRACE_S, prune_packages
from host.apps.packages import read_package
from host.apps.publisher import TrustStore, check_signature
from host.home import Home

SRC = "from stockade import App\n\nclass TestApp(App):\n    pass\n"


def _folder(tmp_path: Path, version: str, permissions: list[str]) -> Path:
    folder = write_app(tmp_path / f"v{version}", "gc", permissions, [], SRC)
    toml = folder / "app.toml"
    toml.write_text(toml.read_text().replace('version = "1.0.0"', f'version = "{version}"'))
    return folder


def _install(home: Home, tmp_path: Path) -> InstallRecord:
    pkg = read_package(_folder(tmp_path, "1.0.0", ["persistence"]))
    return install_package(home, pkg, check_signature(pkg, TrustStore(home.trust_dir)),
                           frozenset({"persistence"}), policy_revision=None)


def _update(home: Home, tmp_path: Path, version: str, permissions: list[str]) -> InstallRecord:
    pkg = read_package(_folder(tmp_path, version, permissions))
    with InstallStore(home.host_store) as store:
        rec = store.by_app("gc")
        assert rec is not None
        submit_update(home, store, rec, pkg, check_signature(pkg, TrustStore(home.trust_dir)),
                      policy_revision=None)
        after = store.by_app("gc")
    assert after is not None
    return after


def _age(folder: Path, seconds: float = STORED_GRACE_S + 60) -> None:
    """As if stored `seconds` ago (the folder and its file)."""
    then = time.time() - seconds
    for p in (*folder.iterdir(), folder):
        os.utime(p, (then, then), follow_symlinks=False)


def _stored(home: Home) -> set[str]:
    return {p.name for p in home.packages_dir.iterdir()}


def test_an_update_removes_the_version_it_replaced(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    v1 = _install(home, tmp_path)
    _age(v1.package_path.parent)
    v2 = _update(home, tmp_path, "1.0.1", ["persistence"])
    assert v2.version == "1.0.1" and v2.package_path.is_file()
    assert _stored(home) == {v2.package_path.parent.name}


def test_a_rejected_and_a_replaced_pending_update_leave_no_package(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    v1 = _install(home, tmp_path)
    wider = _update(home, tmp_path, "2.0.0", ["persistence", "users.read"])
    assert wider.pending is not None and wider.version == "1.0.0"  # waits for consent
    first_pending = wider.pending.package_path.parent
    _age(first_pending)
    again = _update(home, tmp_path, "2.0.1", ["persistence", "users.read"])
    assert again.pending is not None
    # The pending update it replaced is gone; the running version and the new pending one stay.
    assert _stored(home) == {v1.package_path.parent.name, again.pending.package_path.parent.name}
    _age(again.pending.package_path.parent)
    with InstallStore(home.host_store) as store:
        reject_pending(home, store, again)
    assert _stored(home) == {v1.package_path.parent.name}
    assert v1.package_path.is_file()


def test_nothing_an_install_may_still_need_is_removed(tmp_path: Path) -> None:
    """A package stored moments ago may be another operator's install whose record is not
    written yet; a folder not named as a store names it, or a symlink, is the operator's."""
    home = Home(tmp_path / "home").ensure()
    rec = _install(home, tmp_path)
    _age(rec.package_path.parent)  # old, but named by the record: kept
    in_flight = home.packages_dir / ("a" * 64)
    in_flight.mkdir()
    (in_flight / "package.zip").write_bytes(b"stored a moment ago")
    left = home.packages_dir / ("b" * 64)  # a failed install's, an hour ago: removed
    left.mkdir()
    (left / "package.zip").write_bytes(b"x")
    _age(left)
    theirs = home.packages_dir / "backup"
    theirs.mkdir()
    _age(theirs)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not the host's")
    link = home.packages_dir / ("c" * 64)
    link.symlink_to(elsewhere, target_is_directory=True)
    os.utime(link, (0, 0), follow_symlinks=False)
    gone = prune_packages(home)
    assert gone == [left]
    assert _stored(home) == {rec.package_path.parent.name, in_flight.name, theirs.name,
                             link.name}
    assert (elsewhere / "keep.txt").is_file()
    # The in-flight package once it is old and still named by nothing: removed.
    _age(in_flight)
    assert prune_packages(home) == [in_flight]


def test_the_same_home_spelled_another_way_keeps_its_packages(tmp_path: Path) -> None:
    """Records name the path the home had when the package was stored; an operator command
    run with the home through a symlink must not take its packages for unreferenced."""
    home = Home(tmp_path / "home").ensure()
    rec = _install(home, tmp_path)
    _age(rec.package_path.parent)
    alias = tmp_path / "alias"
    alias.symlink_to(tmp_path / "home", target_is_directory=True)
    assert prune_packages(Home(alias)) == []
    assert rec.package_path.is_file()
