"""One real host on a shared PostgreSQL store, driven line by line by test_pg_hosts.py.

It serves (the lease, the upkeep thread that settles dead hosts' calls) and makes the fuzz
app's bridge calls through its own gate. Commands on stdin, one answer line each on stdout:
`create NAME`, `read`, `stall NAME` (a create that stops its process between its admission
and its server write: test_pg_stopped_host.py), `hang` (a create whose server write never
returns: the test SIGKILLs this process in it; the hang is this test's wrapper around the
server, not production code), `freeze` (stops inside a write transaction), `stop`."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gatehelp import build_rig

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.rounds import CHECKPOINT_INTERVAL_S
from host.runtime import Host, HostConfig


def main() -> None:
    home = Home(Path(sys.argv[1]), sys.argv[2])
    host = Host(home, config=HostConfig(watch=False, use_zygote=False,
                                        lease_sweep_s=CHECKPOINT_INTERVAL_S)).start()
    rig = build_rig(home, SystemClock())
    print("READY", host.host_id, flush=True)

    def call(action: str, args: dict[str, Any]) -> str:
        try:
            host.gate.handle(rig.session, action, args)
        except GateError as exc:
            return f"refused {exc.code}"
        return "ok"

    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "create":
            print(call("users.create", {"username": arg, "name": arg, "type": "bot"}),
                  flush=True)
        elif cmd == "read":
            print(call("users.get", {"user_id": "nobody"}), flush=True)
        elif cmd == "hang":
            host.server.users_create = lambda *a, **kw: time.sleep(3600)  # type: ignore[method-assign]
            threading.Thread(target=call, args=(
                "users.create", {"username": "lost", "name": "Lost", "type": "bot"}),
                daemon=True).start()
            print("hanging", flush=True)
        elif cmd == "stall":
            # A create whose process stops itself (SIGSTOP) after its admission, before its
            # server write; it goes on when the test sends SIGCONT. (This test's wrapper around
            # the server, as for `hang`, not production code.)
            real_create = host.server.users_create

            def stop_then_create(*a: Any, **kw: Any) -> Any:
                os.kill(os.getpid(), signal.SIGSTOP)
                return real_create(*a, **kw)

            host.server.users_create = stop_then_create  # type: ignore[method-assign]
            # Its upkeep ends first: stopped inside one of that thread's write transactions
            # (a status publish), the process would hold the store's write lock against every
            # host, and the test would hang on that instead (a matter of luck, not of this).
            host.rounds.stop()
            print(call("users.create", {"username": arg, "name": arg, "type": "bot"}),
                  flush=True)
        elif cmd == "freeze":
            # Stops itself (SIGSTOP) inside a write transaction on the host's store, holding
            # its write lock (test_pg_frozen_writer.py); it goes on at SIGCONT.
            print("freezing", flush=True)
            try:
                with host.ledger.store.transaction():
                    os.kill(os.getpid(), signal.SIGSTOP)
                print("committed", flush=True)
            except Exception as exc:  # the test reads what happened
                print(f"failed {type(exc).__name__}", flush=True)
        elif cmd == "stop":
            host.stop()
            print("stopped", flush=True)
            return


if __name__ == "__main__":
    main()
