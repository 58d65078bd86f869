"""Worker for the crash-consistency test: drives the real gate with users.create until killed.

Modes: `random` (the parent SIGKILLs it at a random moment), `before-write:N` / `after-write:N`
(it SIGKILLs itself just before / just after the server applies its N-th create: the two
windows between the audited decision, the server write and the outcome record), and
`held-write:N` (a running host's ledger: after one create, it assigns a role to that user again
and again, and SIGKILLs itself once the N-th of those writes' success is held for the group commit,
with the commit lock taken so that nothing can commit it first), and `held-create:N` (the
same for creations under a seat ceiling, the N-th one's success held). The kill is done by this test
code wrapping the server or the ledger; production code has no crash hook.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gatehelp import build_rig

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home


def main() -> None:
    home, mode, tag = Home(Path(sys.argv[1])), sys.argv[2], sys.argv[3]
    where, _, nth = mode.partition(":")
    target = int(nth) if nth else -1
    if where == "held-write":
        held_write(home, target)
        return
    if where == "held-create":
        held_create(home, target)
        return
    rig = build_rig(home, SystemClock())
    real = rig.server._server.users_create
    count = [0]

    def users_create(*a: Any, **kw: Any) -> Any:
        count[0] += 1
        if where == "before-write" and count[0] == target:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*a, **kw)
        if where == "after-write" and count[0] == target:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    rig.server._server.users_create = users_create
    print("READY", flush=True)
    i = 0
    while True:
        i += 1
        try:
            rig.gate.handle(rig.session, "users.create",
                            {"username": f"crash-{tag}-{i}", "name": "C", "type": "bot"})
        except GateError:
            pass


def _die_at_held(rig: Any, target: int) -> None:
    """SIGKILL this process once the `target`-th success is held for the group commit, with the
    commit lock taken so that nothing can commit it first."""
    hold = rig.ledger.hold_outcome
    count = [0]

    def hold_then_die(*a: Any, **kw: Any) -> None:
        hold(*a, **kw)
        count[0] += 1
        if count[0] == target:
            rig.ledger.batch._commit.acquire()  # nothing commits the held success now
            os.kill(os.getpid(), signal.SIGKILL)

    rig.ledger.hold_outcome = hold_then_die


def held_write(home: Home, target: int) -> None:
    rig = build_rig(home, SystemClock(), group_reads=True)
    assert rig.ledger.batch is not None
    uid = rig.gate.handle(rig.session, "users.create",
                          {"username": "held-target", "name": "H", "type": "bot"})["id"]
    _die_at_held(rig, target)
    print("READY", flush=True)
    for _ in range(target * 2):  # assigning a role it holds is a write too (idempotent)
        rig.gate.handle(rig.session, "roles.assign", {"user_id": uid, "role": "bot"})
    raise SystemExit("the held write was never reached")


def held_create(home: Home, target: int) -> None:
    """Creations under a seat ceiling (the home's policy has one), each success held for the
    group commit; SIGKILLed once the `target`-th is held."""
    rig = build_rig(home, SystemClock(), group_reads=True)
    assert rig.ledger.batch is not None
    _die_at_held(rig, target)
    print("READY", flush=True)
    for i in range(target * 2):
        rig.gate.handle(rig.session, "users.create",
                        {"username": f"held-c-{i}", "name": "H", "type": "bot"})
    raise SystemExit("the held create was never reached")


if __name__ == "__main__":
    main()
