"""Calls this host admitted whose outcome it could not learn when they failed, asked about again.

A call whose server write failed without saying whether it applied (the store's connection cut
by a restart of a shared PostgreSQL server, a full disk) is asked about at once
(`Gate._settle_unknown`). When even that cannot be answered (the store still down), its intent
stayed pending, its quota units and its seat reserved, for as long as the host served: no
other host settles a live host's calls, and this one asked only at its next start. It notes
the call here instead, and its upkeep asks again each round (`host.rounds`) until the server
can say: not applied gives the units and the seat back, applied keeps them, exactly as a
settlement after a crash would (`Ledger.settle`). A call whose outcome record the store
refused (full, locked past the wait, unreachable: `Ledger.outcome`) is noted the same way. Only
calls that have ended are noted, so no call still in flight is ever settled under its host.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from host.ledger.storelease import SETTLE_BUDGET_S

log = logging.getLogger("stockade.ledger")

# How long one upkeep round may spend asking (s): the round also beats this host's lease, and a
# workspace's read-back can take seconds, so a backlog is asked about over several rounds, as
# a dead host's is (`host.ledger.storelease.SETTLE_BUDGET_S`). A read-back under way finishes.
ASK_BUDGET_S = SETTLE_BUDGET_S

# Calls noted at most (rule 13): each is one ended call whose outcome is unknown, so an outage
# that outlasts this many leaves the rest to the next start's settlement, as before.
MAX_UNSETTLED = 10_000


class Settles(Protocol):
    """The part of `Ledger` this uses."""

    host_id: str | None

    def settle(self, was_applied: Callable[[str], bool | None], host_id: str | None = None, *,
               untagged: bool = False, until: float | None = None) -> int: ...

    def pending_intents(self, host_id: str | None = None) -> Sequence[object]: ...


class Unsettled:
    """The op_ids of this host's ended calls with an unknown outcome (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: set[str] = set()

    def note(self, op_id: str) -> None:
        with self._lock:
            if len(self._ops) < MAX_UNSETTLED:
                self._ops.add(op_id)
                return
        log.warning("%s: outcome unknown, left for settlement at the next start (%d calls "
                    "already wait to be asked about again)", op_id, MAX_UNSETTLED)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ops)

    def settle(self, ledger: Settles, was_applied: Callable[[str], bool | None]) -> int:
        """Ask the server again about each noted call; settle those it can answer for. Returns
        how many were settled. A call settled meanwhile by anyone is forgotten."""
        with self._lock:
            ops = set(self._ops)
        if not ops:
            return 0

        def asked(op_id: str) -> bool | None:
            if op_id not in ops:
                return None  # not noted: maybe still in flight on this host, never touched
            try:
                return was_applied(op_id)
            except Exception:  # noqa: BLE001 - the server cannot say yet: asked next round
                return None

        settled = ledger.settle(asked, ledger.host_id, until=time.monotonic() + ASK_BUDGET_S)
        still = {str(getattr(i, "op_id", "")) for i in ledger.pending_intents(ledger.host_id)}
        with self._lock:
            self._ops -= ops - still
        return settled
