"""Two operators uninstalling one app at once, one of them in the console: the console's
uninstall that finds the app already gone answers 404 saying so, not a 500 (the removal failed
on the missing install row, a TypeError, and the page was a bare 500 with its traceback)."""
from __future__ import annotations

import re
from typing import Any

import pytest
from conhelp import Served, signed_in

import host.console.app as console_app
from host.apps.installs import InstallStore
from host.apps.operations import uninstall_app


def test_an_uninstall_that_finds_the_app_gone_is_a_404_saying_so(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    c = signed_in(served)
    with InstallStore(served.home.host_db) as store:
        rec = store.by_app("agent-sync")
    assert rec is not None
    url = f"/console/apps/{rec.install_id}/uninstall"
    csrf = re.search(r'name="csrf" value="([^"]+)"',  # type: ignore[union-attr]
                     c.get(url).text).group(1)
    real = console_app.uninstall_app

    def uninstalled_meanwhile(home: Any, store: InstallStore, rec: Any, **kw: Any) -> Any:
        with InstallStore(served.home.host_db) as other:  # another operator's, first
            uninstall_app(served.home, other, other.get(rec.install_id),  # type: ignore[arg-type]
                          users="keep", agents="keep")
        return real(home, store, rec, **kw)

    monkeypatch.setattr(console_app, "uninstall_app", uninstalled_meanwhile)
    r = c.post(url, data={"csrf": csrf, "users": "keep", "agents": "remove", "confirm": "yes"},
               headers={"Origin": served.url})
    assert r.status_code == 404, (r.status_code, r.text[:300])
    assert "already uninstalled" in r.text
