"""Two operators uninstalling one app at once: the one whose uninstall found the app already
gone says so and fails (exit 2, as for an app not found; nothing on stdout with --json),
instead of reporting a second success for an uninstall that deleted nothing.

The interleaving is forced as in test_cli_concurrent_edits.py: the command under test has read
the install, and a second, real `stockade` process uninstalls it before the first one's
uninstall runs (a wrapper at the call)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)
from test_cli_concurrent_edits import _installed, _other_operator

import host.cli.app_uninstall_cmd as app_uninstall_cmd
from host.apps.installs import InstallGone, InstallStore
from host.apps.operations import uninstall_app
from host.home import Home


def test_the_second_of_two_racing_uninstalls_fails_saying_so(
        cli: Run, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(cli, tmp_path, "livechat.read")
    real = app_uninstall_cmd.uninstall_app

    def uninstalled_meanwhile(*a: Any, **kw: Any) -> Any:
        _other_operator(home, "app", "uninstall", "agent-sync", "--yes")
        return real(*a, **kw)

    monkeypatch.setattr(app_uninstall_cmd, "uninstall_app", uninstalled_meanwhile)
    r = cli("app", "uninstall", "agent-sync", "--yes", "--json")
    assert r.exit_code == 2, r.output
    assert "already uninstalled" in r.stderr and "nothing changed" in r.stderr, r.stderr
    assert r.stdout == ""
    assert "uninstalled agent-sync" not in r.stderr


def test_uninstall_app_with_a_record_read_before_another_uninstall_raises(
        cli: Run, home: Path, tmp_path: Path) -> None:
    """Both operators read the install, one uninstalls it, then the other: the second raises
    InstallGone and touches nothing (no hook, no data removal counted as its own)."""
    _installed(cli, tmp_path, "livechat.read")
    h = Home(home)
    with InstallStore(h.host_store) as one, InstallStore(h.host_store) as two:
        first = one.by_app("agent-sync")
        second = two.by_app("agent-sync")
        assert first is not None and second is not None
        uninstall_app(h, one, first, users="keep", agents="keep")
        hooks = len(two.pending_hooks())
        with pytest.raises(InstallGone, match="already uninstalled"):
            uninstall_app(h, two, second, users="keep", agents="keep")
        assert len(two.pending_hooks()) == hooks  # no second `uninstall` hook recorded
        assert two.by_app("agent-sync") is None
    listed = json.loads(cli("app", "list", "--json").stdout)
    assert listed == [] or all(a.get("app_id") != "agent-sync" for a in listed), listed

