"""An operator command run while a host serves the same home is never refused because the
host anchored its chain in the middle of the command's check.

Before its record, every operator command checks that the chain verifies from its anchor
(`AuditLog.verify_from_anchor`). It read the chain's head, then the anchor file: a serving host
appending records and anchoring them in between (its upkeep anchors every 2 s, with no turn the
command takes) left an anchor past the head the command had read, and the command was refused
with "the audit chain does not verify (records N..M are missing ...)", pointing the operator at
a restore from backup over a chain that was intact. The interleaving is forced here.
"""
from __future__ import annotations

from pathlib import Path

from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import AuditLog, AuditRecord
from host.ledger.operator import audited
from host.runtime import Host, HostConfig


def test_an_anchor_moved_by_a_serving_host_mid_check_refuses_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        host.ledger.checkpoint()
        cli = AuditLog(home.host_store, SystemClock())  # the operator command's own log
        read_head = cli._head_row

        def head_then_the_host_anchors() -> tuple[int, str] | None:
            head = read_head()
            for _ in range(3):  # the host's calls and its upkeep round, right now
                host.ledger.append(AuditRecord(kind="supervisor", app_id="a", install_id="i",
                                               event="test", detail="meanwhile"))
            host.ledger.checkpoint()
            return head

        cli._head_row = head_then_the_host_anchors  # type: ignore[method-assign]
        with audited(cli, "test_race") as act:
            assert act.seq > 0
        cli._head_row = read_head  # type: ignore[method-assign]
        assert host.ledger.audit.verify().ok
        cli.close()
