"""`doctor` warns when a host serving a shared store has a clock off the database's by more than
`MAX_CLOCK_LEAD_S` (`host/doctor.py`). Quota windows were timed by the clock of the host that
charged them (with one host's clock 50 s ahead a limit of one unit a 100 s window admitted two
units 50 s apart, a reviewer's reproduction); they are timed by the database's clock now
(tests/store/test_pg_quota_clock.py), and what a skewed host still stamps by its own clock is its
group-committed audit records' times: a warning, not a failure. Each lease row carries the
host's own beat time and the database's (`LeaseRow.clock_lead`)."""
from __future__ import annotations

import json
import re
import time

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401

from host.clock import ManualClock, SystemClock
from host.ledger.storelease import StoreLease, live_hosts


def _doctor(cli: Run, pg_url: str) -> dict[str, dict[str, object]]:
    r = cli("--store", pg_url, "doctor", "--json")
    return {c["name"]: c for c in json.loads(r.stdout)["checks"]}


def test_a_host_whose_clock_is_ahead_fails_doctor(cli: Run, pg_url: str) -> None:
    assert cli("--store", pg_url, "store", "migrate").exit_code == 0
    on_time = StoreLease(pg_url, "on-time", SystemClock())
    on_time.acquire(lambda h, until=None: 0)
    try:
        checks = _doctor(cli, pg_url)
        assert "host clocks" not in checks, checks  # a real beat: no false alarm
        [row] = live_hosts(pg_url)
        assert row.clock_lead is not None and abs(row.clock_lead) < 1.0, row
        ahead = StoreLease(pg_url, "ahead", ManualClock(time.time() + 50))
        ahead.acquire(lambda h, until=None: 0)
        try:
            checks = _doctor(cli, pg_url)
            clocks = checks["host clocks"]
            assert clocks["ok"] is False and "ahead" in str(clocks["detail"]), clocks
            assert clocks["required"] is False, clocks  # quotas hold: a warning
            # The lead as the beat measured it: the manual clock stood still from its making
            # to the beat while the database's went on (+49.9 s in a loaded CI run).
            lead = re.search(r"ahead on \S+: \+(\d+(?:\.\d+)?) s", str(clocks["detail"]))
            assert lead is not None and 48.0 < float(lead.group(1)) <= 50.0, clocks
            assert "on-time" not in str(clocks["detail"])
        finally:
            ahead.release()
    finally:
        on_time.release()
