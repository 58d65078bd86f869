"""A real host process stopped (SIGSTOP) between a create's admission and its server write, past
its lease grace, its lease session ended meanwhile (as TCP keepalives end a frozen VM's): a
survivor's upkeep settles the create as `not_applied` and refunds its unit. When the stopped
host is continued, its create goes on to its server write. Before the fence it applied: the
quota of three let four users be created and the chain said `not_applied` of a user that exists.
The host's stores now check its lease row inside every write transaction, under the write lock
(`host.store.pg`, `PgStore.fence`), and the survivor deletes that row before it settles
(`host.ledger.storelease`): the resumed write is refused, and the host gives up its lease.
"""
from __future__ import annotations

import signal
import time
from pathlib import Path

import psycopg
import pytest
from gatehelp import QUOTA_LIMIT, add_seat_ceiling, install_fuzz_app
from test_pg_hosts import Worker, _ledger, _quota_used

from host.home import Home
from host.ledger.storelease import lease_key
from host.migrate import migrate


@pytest.fixture
def home(tmp_path: Path, pg_url: str) -> Home:
    migrate(pg_url)
    h = Home(tmp_path / "home", pg_url).ensure()
    install_fuzz_app(h)
    add_seat_ceiling(h)
    return h


def _stopped(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def _wait(cond: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _end_lease_session(url: str, host_id: str) -> None:
    """End the backend holding `host_id`'s lease lock, and age its beat past its grace (by the
    database's clock, as the wait would; no sleeping through the grace)."""
    key = lease_key(host_id)
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
            "((classid::bigint << 32) | objid::bigint) = (%s::bigint & x'ffffffffffffffff'"
            "::bigint)", (key,)).fetchone()
        assert row is not None
        admin.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        _wait(lambda: admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                    (row[0],)).fetchone() is None, "backend still there")
        admin.execute("UPDATE host_leases SET beat_db = beat_db - 2 * grace_s"
                      " WHERE host_id = %s", (host_id,))


def _users(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as c:
        return sorted(str(r[0]) for r in c.execute(
            "SELECT username FROM users WHERE created_by_app IS NOT NULL"
            " AND username LIKE 'q-%%'"))


def test_a_stopped_host_resumed_after_its_create_was_settled_does_not_apply_it(
        home: Home) -> None:
    url = str(home.store_url)
    survivor, stopped = Worker(home), Worker(home)
    try:
        for i in range(QUOTA_LIMIT - 1):
            survivor.send(f"create q-{i}")
            assert survivor.answer() == "ok"
        stopped.send("stall q-frozen")  # takes the last unit, then stops itself
        _wait(lambda: _stopped(stopped.proc.pid), "the host did not stop")
        assert _quota_used(home) == QUOTA_LIMIT
        _end_lease_session(url, stopped.host_id)
        led = _ledger(home)
        _wait(lambda: not led.pending_intents(), "the survivor did not settle")
        assert _quota_used(home) == QUOTA_LIMIT - 1  # not applied: refunded

        stopped.proc.send_signal(signal.SIGCONT)
        answer = stopped.answer()
        assert answer.startswith("refused"), answer  # its write was fenced off
        survivor.send("create q-last")
        assert survivor.answer() == "ok"  # the refunded unit
        survivor.send("create q-over")
        assert survivor.answer() == "refused quota_exceeded"
        assert _users(url) == sorted([*(f"q-{i}" for i in range(QUOTA_LIMIT - 1)), "q-last"])
        settled = [(b["op_id"], b["ok"], b["code"]) for b in
                   (e.body for e in led.audit.tail(100)) if b.get("reconciled")]
        assert [s[1:] for s in settled] == [(False, "not_applied")]
        assert not any(b.get("op_id") == settled[0][0] and b.get("ok") for b in
                       (e.body for e in led.audit.tail(100)) if b["kind"] == "outcome")
    finally:
        if stopped.proc.poll() is None:
            stopped.proc.send_signal(signal.SIGCONT)
        survivor.close()
        stopped.close()
    # The fenced host stopped cleanly (its lease session had ended under it).
    assert stopped.proc.returncode == 0
