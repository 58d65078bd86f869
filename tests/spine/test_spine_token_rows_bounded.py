"""An app that crashes again and again does not grow `host.db` without bound (DESIGN rule 13).

Every child start mints a token and records it in `token_minted`, revoking the host's earlier
token of the install (`re-minted`). Those rows stayed for good: one per restart, and an app
that answers one event and crashes on the next is restarted after the shortest backoff (50 ms),
so it alone added ~10 rows a second for the life of the home. Now a host keeps the newest
`MAX_LISTED` rows of an install (what `app tokens` lists) and drops its own re-minted ones
past them, once the install has `prune_past()` rows; a token revoked any other way (the
operator, a deactivated user) is kept."""
from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from churnhelp import CHURN_POLICY, OK_APP

from host.home import Home
from host.keys import registry
from host.runtime import Host, HostConfig
from host.supervise import restarts

KEEP = 20  # rows kept per install in this test (the product keeps registry.MAX_LISTED)
RESTARTS = 60


def _rows(home: Home, install_id: str) -> tuple[int, int, int]:
    db = sqlite3.connect(home.host_db)
    try:
        total, live, by_operator = db.execute(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE revoked_at IS NULL),"
            " COUNT(*) FILTER (WHERE reason = 'revoked by the test') FROM token_minted"
            " WHERE install_id = ?", (install_id,)).fetchone()
    finally:
        db.close()
    return int(total), int(live), int(by_operator)


def test_a_crash_looping_app_keeps_a_bounded_number_of_token_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "MAX_LISTED", KEEP)
    # Past the crash limit the app would be stopped for crash-looping after a handful of deaths
    # (`tests/security/test_crash_loop_stop.py`); here it must go on, for the rows to pile up.
    monkeypatch.setattr(restarts, "CRASH_LIMIT", RESTARTS + 1)
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "spine", CHURN_POLICY)
    rec = install(home, write_app(tmp_path / "apps", "churn", ["livechat.read"],
                                  ["livechat.room_started"], OK_APP))
    with Host(home, config=HostConfig(watch=False)) as h:
        runner = h.runners[rec.install_id]
        assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
        # A token the operator revoked stays listed however many restarts follow it.
        assert runner.session is not None
        h.tokens.revoke(rec.install_id, 1.0, "revoked by the test", runner.session.claims.jti)
        for _ in range(RESTARTS):
            child = runner.child
            assert child is not None
            os.kill(child.pid, signal.SIGKILL)  # the app's process dies
            deadline = time.monotonic() + 10
            while not child.has_exited():  # the zygote reports it
                assert time.monotonic() < deadline
                time.sleep(0.02)
            # the death is accounted, and the event answered by a fresh child (the success
            # resets the backoff)
            assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
        assert runner.restarts == RESTARTS
        total, live, by_operator = _rows(home, rec.install_id)
    assert live == 1 and by_operator == 1
    # Before: one row per start (61 here), for good. Pruned, 21 to 25.
    assert total <= registry.prune_past(), f"{total} token rows kept after {RESTARTS} restarts"
