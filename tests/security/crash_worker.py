"""Worker for the crash-consistency test: drives the real gate with users.create until killed.

Modes: `random` (the parent SIGKILLs it at a random moment), `before-write:N` / `after-write:N`
(it SIGKILLs itself just before / just after the server applies its N-th create: the two
windows between the audited decision, the server write and the outcome record). The kill is
done by this test code wrapping the server; production code has no crash hook.
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
    rig = build_rig(home, SystemClock())
    where, _, nth = mode.partition(":")
    target = int(nth) if nth else -1
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


if __name__ == "__main__":
    main()
