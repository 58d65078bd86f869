"""An install whose app user cannot be made (its username `app.<id>` held by another user) fails
that app alone at the host's start, never the host: the other apps run, and the chain and the
log say which app waits and why. Installs made since `app install` checks the name first cannot
get there; a home installed before that can (the row saved before its user was made)."""
from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest
from apphelp import install, write_app

from host.home import Home
from host.runtime import Host, HostConfig

SRC = "from stockade import App\nclass TestApp(App):\n    pass\n"


def test_one_install_whose_app_user_is_held_does_not_stop_the_host(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = Home(tmp_path / "home").ensure()
    good = install(home, write_app(tmp_path / "apps", "good", ["messages.read"], [], SRC))
    held = install(home, write_app(tmp_path / "apps", "held", ["messages.read"], [], SRC))
    with sqlite3.connect(home.host_store) as db:  # as an install from before the check left it
        db.execute("UPDATE install_installs SET app_user_id = NULL WHERE install_id = ?",
                   (held.install_id,))
        db.execute("UPDATE users SET app_id = NULL, type = 'user' WHERE username = 'app.held'")
    caplog.set_level(logging.ERROR, "stockade.host")
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as h:
        assert set(h.runners) == {good.install_id}
        h.sync_installs()  # a later sync neither raises nor records it a second time
        assert set(h.runners) == {good.install_id}
        if h.ledger.batch is not None:
            h.ledger.batch.flush()
        bodies = [json.loads(b) for (b,) in h.ledger.store.conn().execute(
            "SELECT body FROM audit ORDER BY seq")]
    waits = [b for b in bodies if b.get("event") == "app_user_unavailable"]
    assert [(b["app_id"], b["install_id"]) for b in waits] == [("held", held.install_id)]
    assert "app.held" in waits[0]["detail"]
    assert any("held" in r.getMessage() and "app.held" in r.getMessage()
               for r in caplog.records)
