"""Quota windows on a shared PostgreSQL store are timed by the database server's clock.

Each host used to time its charges by its own clock: with one host's clock a window ahead of
another's, a limit of one unit a window let both take a unit at the same moment (the later
host read the earlier unit as freed: `t + W <= now` on its clock). `stockade doctor` showed the
skew ("host clocks") but nothing prevented the over-admission. Every write transaction now reads
the database's clock under the write lock (`PgConn.began_at`), and the ledger times windows by
it (`Store.clock_in`), so two hosts' clocks disagreeing changes nothing they admit."""
from __future__ import annotations

import time
from pathlib import Path

from host.clock import ManualClock
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge
from host.migrate import migrate

WINDOW_S = 100.0


def _rec(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a", install_id="i", action="users.create",
                       op_id=op, write=True)


def _host(url: str, base: Path, name: str, lead_s: float) -> Ledger:
    """A host whose clock reads `lead_s` ahead of the true time (a frozen reading: no test
    waits a window; the database's clock moves on its own)."""
    own = base / name
    return Ledger(url, ManualClock(time.time() + lead_s), anchor_path=own / "audit.anchor",
                  key_path=own / "anchor.key")


def test_a_host_a_window_ahead_takes_no_second_unit(pg_url: str, tmp_path: Path) -> None:
    migrate(pg_url)
    on_time = _host(pg_url, tmp_path, "on-time", 0.0)
    ahead = _host(pg_url, tmp_path, "ahead", WINDOW_S + 1)
    charge = Charge("app:a:create", 1, WINDOW_S)
    try:
        assert on_time.admit(_rec("first"), [charge]).allowed
        second = ahead.admit(_rec("second"), [charge])
        # Before: allowed (the ahead host read the first unit as freed a second ago).
        assert not second.allowed, "a host whose clock is a window ahead took a second unit"
        assert second.message is not None and "app:a:create" in second.message
        # And the other way round: the host behind reads the unit the host ahead took as
        # taken now, not a window into the future (it frees WINDOW_S after it was taken).
        state = on_time.quota_state("app:a:create", 1, WINDOW_S)
        assert state.used == 1 and state.next_free_at is not None
        assert time.time() < state.next_free_at <= time.time() + WINDOW_S
    finally:
        on_time.close()
        ahead.close()


def test_the_store_clock_is_read_under_the_write_lock(pg_url: str, tmp_path: Path) -> None:
    """Each write transaction carries the database's time, taken once its lock was held:
    consecutive transactions read non-decreasing times, whatever the hosts' clocks say."""
    migrate(pg_url)
    led = _host(pg_url, tmp_path, "h", -3600.0)  # an hour behind
    try:
        seen = []
        for _ in range(3):
            with led.store.transaction() as c:
                at = led.store.clock_in(c)
                assert at is not None
                seen.append(at)
        assert seen == sorted(seen)
        assert abs(seen[-1] - time.time()) < 5.0  # the database's clock, not the host's
    finally:
        led.close()
