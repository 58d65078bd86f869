"""A call whose outcome record the store could not take is asked about again while its host serves.

An admitted call's end is its own transaction (`Ledger.outcome`) when its decision committed
before the act: a host-served request, a remote workspace's write, a server whose data is not in
the host's store. If the store failed that write (here a full disk: real, a tmpfs the test
fills), the call's intent stayed pending with its units reserved until the host's next start
settled it, however soon the store came back. Now the call is noted (`host.ledger.unsettled`) and
the host's upkeep asks the server about it each round: a refusal's units come back as soon as
the store takes the record."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from diskhelp import fill, small_disk

from host.clock import SystemClock
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge
from host.store import STORE_FAILURES

CREATE = Charge("install:i:users.create#q", 3, 100.0)


def _rec(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a", install_id="i", action="users.create",
                       op_id=op, write=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_an_outcome_the_full_store_refused_is_asked_about_again(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        led = Ledger(disk / "host.db", SystemClock(), anchor_path=tmp_path / "audit.anchor",
                     key_path=tmp_path / "anchor.key")
        try:
            led.host_id = "h1"
            assert led.admit(_rec("refused-by-server"), [CREATE]).allowed
            fillers = fill(disk)
            with pytest.raises(STORE_FAILURES):  # the server refused it: a refund, not written
                led.outcome(1, "refused-by-server", False, "invalid_argument", refund=True)
            # Before: nothing noted, the unit held until the host's next start.
            assert len(led.unsettled) == 1
            for f in fillers:
                f.unlink()
            # The upkeep's next round (`host.rounds`): the server says it applied nothing.
            assert led.unsettled.settle(led, lambda op_id: False) == 1
            assert led.pending_intents() == []
            assert led.quota_state(CREATE.key, CREATE.limit, CREATE.window_s).used == 0
            assert led.audit.verify().ok
        finally:
            led.close()
