"""The seat read-back runs on the host's upkeep thread, which also beats the host's lease on a
shared store (admitting stops 10 s after the last beat; other hosts settle this one's calls
after 20 s). A pass read its whole batch of 100 users, one `users.info` each: at 0.2 s an
answer that is 20 s, and a workspace answering each just inside the call deadline held the
thread 7 minutes. A pass now stops at `SEAT_SYNC_BUDGET_S` and the next one goes on from there.
The clock is the test's: each answer takes 0.5 s of it."""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rcfake import FakeWorkspace, remote_on

from host.server.remote import core
from host.server.remote.core import SEAT_SYNC_BATCH, SEAT_SYNC_BUDGET_S

STEP_S = 0.5


def test_a_seat_pass_stops_at_its_budget_and_the_next_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(core, "time", SimpleNamespace(monotonic=lambda: now[0],
                                                      sleep=time.sleep))
    deactivated = {f"u{i:03}" for i in range(0, SEAT_SYNC_BATCH, 2)}

    def info(q: dict[str, str], b: Any) -> tuple[int, dict[str, Any]]:
        now[0] += STEP_S  # each answer takes half a second
        uid = q["userId"]
        return 200, {"user": {"_id": uid, "username": uid, "active": uid not in deactivated}}

    fake = FakeWorkspace({"GET users.info": info})
    rs = remote_on(fake, tmp_path)
    for i in range(SEAT_SYNC_BATCH):
        rs.owned.record_user(f"u{i:03}", f"u{i:03}", created_by_app="a", app_id=None, now=0.0)
    start = now[0]
    rs.sync_seats()
    spent = now[0] - start
    assert spent <= SEAT_SYNC_BUDGET_S + STEP_S, f"one pass took {spent:g} s of the clock"
    first = len(fake.log)
    assert 0 < first < SEAT_SYNC_BATCH
    # Pass after pass, every user is read exactly once before the lap starts again.
    while len(fake.log) < SEAT_SYNC_BATCH:
        rs.sync_seats()
    read = [q["userId"] for _m, _r, q, _b in fake.log[:SEAT_SYNC_BATCH]]
    assert sorted(read) == sorted(f"u{i:03}" for i in range(SEAT_SYNC_BATCH))
    assert rs.seats_in_use([]) == SEAT_SYNC_BATCH - len(deactivated)
