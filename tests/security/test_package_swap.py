"""A stored package swapped behind the host's back never runs (DESIGN rule 11: what runs is what
the operator consented to).

The consent signs the package's content hash; the package itself is a file in the home
(`packages/<hash>/package.zip`). Each start hashes what it read against the consented hash
(`host.supervise.appcode`), including a start whose earlier read of the same path was kept
in the host's package cache.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from apphelp import install, write_app

from host.apps.installs import InstallStore
from host.apps.package_store import store_package
from host.apps.packages import read_package
from host.home import Home
from host.runtime import Host
from host.supervise.child import ChildDied
from host.supervise.jobs import EventDropped

HONEST = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "honest"
'''

SWAPPED = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "swapped"
'''


def _swap(home: Home, tmp_path: Path, target: Path) -> None:
    """Overwrite the stored package with a valid package of the same app, other code."""
    other = write_app(tmp_path / "other", "swap-app", ["livechat.read"], ["livechat.room_started"], SWAPPED)
    staged = store_package(tmp_path / "staging", read_package(other))
    shutil.copyfile(staged, target)


def _consent_records(home: Home) -> list[tuple[str, str]]:
    with sqlite3.connect(home.host_db) as c:
        rows = c.execute("SELECT body FROM audit ORDER BY seq").fetchall()
    bodies = [json.loads(r[0]) for r in rows]
    return [(b.get("code", ""), b.get("detail", "")) for b in bodies if b.get("kind") == "consent"]


def _start(h: Host, app_id: str) -> str:
    runner = next(r for r in h.runners.values() if r.app_id == app_id)
    return str(runner.submit("livechat.room_started", {}, 5.0).result(20))


def test_a_swapped_package_is_refused_at_start_and_the_app_disabled(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(tmp_path / "apps", "swap-app", ["livechat.read"], ["livechat.room_started"],
                                  HONEST))
    _swap(home, tmp_path, rec.package_path)
    with Host(home) as h:
        # The first start may be the install hook's, at host start: either way it is refused.
        # Refused then, the app is disabled by now: its runner drops the event, or is gone.
        runner = next((r for r in h.runners.values() if r.app_id == "swap-app"), None)
        if runner is not None:
            with pytest.raises((ChildDied, EventDropped),
                               match=r"not the one consented to|app is not enabled|disabled"):
                runner.submit("livechat.room_started", {}, 5.0).result(20)
        after = InstallStore(home.host_store).get(rec.install_id)
        assert after is not None and not after.enabled
        assert "tampering detected" in (after.disabled_reason or "")
    assert any(code == "consent_invalid" and "not the one consented to" in detail
               for code, detail in _consent_records(home))


def test_a_package_swapped_after_a_cached_start_is_refused_too(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(tmp_path / "apps", "swap-app", ["livechat.read"], ["livechat.room_started"],
                                  HONEST))
    with Host(home) as h:
        assert _start(h, "swap-app") == "honest"  # read, checked and cached
        runner = next(r for r in h.runners.values() if r.app_id == "swap-app")
        assert runner.child is not None
        _swap(home, tmp_path, rec.package_path)
        runner.child.kill("test: restart", code="stopped")
        with pytest.raises(ChildDied, match="not the one consented to"):
            _start(h, "swap-app")
        after = InstallStore(home.host_store).get(rec.install_id)
        assert after is not None and not after.enabled


def test_app_info_never_names_a_swapped_packages_signer_as_the_publisher(tmp_path: Path) -> None:
    """`app info`'s publisher line read whatever file sat at the stored path: a package
    swapped there had its signer (or its lack of one) shown as the installed app's publisher
    now. It now says the stored package is not the one installed."""
    from typer.testing import CliRunner

    from host.cli.main import root

    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(tmp_path / "apps", "swap-app", ["livechat.read"],
                                  ["livechat.room_started"], HONEST))
    _swap(home, tmp_path, rec.package_path)
    r = CliRunner().invoke(root, ["--home", str(home.root), "app", "info", "swap-app", "--json"])
    assert r.exit_code == 0, r.output
    now = json.loads(r.stdout)["publisher_now"]
    assert now["status"] == "unreadable" and "not the one installed" in now["problem"], now
