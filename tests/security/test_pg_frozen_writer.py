"""A host stopped (SIGSTOP, a debugger, a long pause) inside a write transaction on the shared
store no longer stops every other host's writes for as long as it stays stopped.

It held the store's one write lock (`host.store.pg.WRITE_LOCK`), and its machine's kernel kept
its session alive, so every other host's write waited `LOCK_TIMEOUT_MS` and failed, call after
call, until the stopped process was continued: one stopped process took the whole deployment's
writes down. Each host session now asks the server to end it when it sits idle inside a
transaction past `IDLE_IN_TRANSACTION_MS` (less than the lock wait): its transaction rolls back,
the lock goes, the others write on, and the stopped host, continued, finds its transaction gone
(nothing of it was written).
"""
from __future__ import annotations

import signal
import time
from pathlib import Path

import psycopg
import pytest
from gatehelp import add_seat_ceiling, install_fuzz_app
from test_pg_hosts import Worker

from host.home import Home
from host.migrate import migrate
from host.rounds import CHECKPOINT_INTERVAL_S
from host.store.pg import LOCK_TIMEOUT_MS, WRITE_LOCK


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


def _write_lock_held(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as c:
        return c.execute(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND"
            " ((classid::bigint << 32) | objid::bigint) = %s", (WRITE_LOCK,)).fetchone() is not None


def test_a_host_stopped_holding_the_write_lock_does_not_stop_the_others(home: Home) -> None:
    other, frozen = Worker(home), Worker(home)
    try:
        frozen.send("freeze")
        assert frozen.answer() == "freezing"
        deadline = time.monotonic() + 10
        while not _stopped(frozen.proc.pid):
            assert time.monotonic() < deadline, "the host did not stop"
            time.sleep(0.02)
        # The lock goes within the lock wait (`LOCK_TIMEOUT_MS`), so a writer queued behind
        # it gets it instead of failing.
        deadline = time.monotonic() + LOCK_TIMEOUT_MS / 1000 - 1
        while _write_lock_held(str(home.store_url)):
            assert time.monotonic() < deadline, "the stopped host still holds the write lock"
            time.sleep(0.1)
        # (the other host's upkeep waited on the lock too; its next beat lets it admit again)
        time.sleep(2 * CHECKPOINT_INTERVAL_S)
        for name in ("q-0", "q-1"):
            other.send(f"create {name}")
            assert other.answer() == "ok"
        frozen.proc.send_signal(signal.SIGCONT)
        assert frozen.answer().startswith("failed")  # its transaction was ended under it
    finally:
        if frozen.proc.poll() is None:
            frozen.proc.send_signal(signal.SIGCONT)
        other.close()
        frozen.close()
