"""A serving host on a shared PostgreSQL store keeps anchoring its audit chain (and its other
upkeep) while its lease sweep cannot settle a dead host's calls.

Each upkeep round beats and sweeps the lease, then checkpoints and anchors the audit chain. The
sweep settles a dead host's unfinished calls by asking the server whether each was applied; a
question that failed on a store error (the embedded server's ops read on PostgreSQL cancelled
by a statement timeout) raised out of the sweep, and the anchoring and the server's checkpoint,
in the same step, were skipped every round for as long as it lasted: records appended
meanwhile were pinned by no anchor, so cutting them went unseen by `audit verify`. (A server
that cannot say, `Unavailable`, leaves the call unsettled without raising since.)
"""
from __future__ import annotations

import time
from pathlib import Path

import psycopg

from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.migrate import migrate
from host.runtime import Host, HostConfig


def test_a_sweep_that_cannot_settle_leaves_the_anchor_moving(pg_url: str,
                                                              tmp_path: Path) -> None:
    migrate(pg_url)
    home = Home(tmp_path / "home", pg_url).ensure()
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        # A host that died mid-call (no lease row: it is swept as gone) ...
        dead = Ledger(pg_url, SystemClock(), anchor_path=tmp_path / "dead" / "audit.anchor",
                      key_path=tmp_path / "dead" / "anchor.key", host_id="deadhost")
        dead.admit(AuditRecord(kind="decision", app_id="a", install_id="i",
                               action="users.create", op_id="op-dead", write=True), [])

        def cannot_say(op_id: str) -> bool:  # ... and a server whose store cannot answer
            raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")

        host.server.was_applied = cannot_say  # type: ignore[method-assign]
        seq = host.ledger.append(AuditRecord(kind="supervisor", app_id="a", install_id="i",
                                             event="test", detail="after the death"))
        deadline = time.monotonic() + 10
        while (anchor := host.ledger.audit.read_anchor()) is None or anchor.seq < seq:
            assert time.monotonic() < deadline, f"anchor stayed at {anchor} below seq {seq}"
            time.sleep(0.1)
        assert [i.op_id for i in host.ledger.audit.pending_intents("deadhost")] == ["op-dead"]
