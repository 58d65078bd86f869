"""A long-running host's lifecycle-hook queue stays bounded under churn (DESIGN rule 13).

Every disable, enable, settings change, update, install and uninstall writes a row to
`install_hooks` in the transaction that makes the change; the supervisor runs the hook and
the row is done. Done rows used to stay for good (marked `done_at`, read by nothing): two rows
per disable/enable cycle, for the life of the home, and every sync's `pending_hooks` scanned
them all (no index on `done_at`)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from apphelp import install, write_app, write_policy
from churnhelp import CHURN_POLICY, OK_APP

from host.home import Home
from host.runtime import Host, HostConfig

CYCLES = 100


def _hook_rows(home: Home) -> tuple[int, int]:
    db = sqlite3.connect(home.host_db)
    try:
        total, pending = db.execute(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE done_at IS NULL) FROM install_hooks"
        ).fetchone()
    finally:
        db.close()
    return int(total), int(pending)


def test_done_hook_rows_do_not_pile_up_over_disable_enable_cycles(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "spine", CHURN_POLICY)
    rec = install(home, write_app(tmp_path / "apps", "churn", ["livechat.read"],
                                  ["livechat.room_started"], OK_APP))
    with Host(home, config=HostConfig(watch=False)) as h:
        for _ in range(CYCLES):
            h.installs.set_enabled(rec.install_id, False)
            h.sync_installs()
            h.installs.set_enabled(rec.install_id, True)
            h.sync_installs()
        runner = h.runners[rec.install_id]
        assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
        total, pending = _hook_rows(home)
    assert pending == 0  # every hook ran
    # Before: 2 rows per cycle (201 after 100 cycles), every one of them done.
    assert total <= 2, f"{total} hook rows kept after {CYCLES} disable/enable cycles"
