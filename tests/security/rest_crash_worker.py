"""Worker for the unmapped-`rest.call` crash test: a real host whose app calls a REST route with
no bridge action; the worker SIGKILLs itself right after the server's dispatcher returns (the
route's write committed, the outcome record not yet written). The kill is done by this test code
wrapping the dispatcher; production code has no crash hook."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from host.home import Home
from host.runtime import Host, HostConfig
from host.server import rest
from host.server.principals import SYSTEM


def main() -> None:
    home = Home(Path(sys.argv[1]))
    real = rest.RestDispatcher.call

    def call_then_die(self: rest.RestDispatcher, *a: Any, **kw: Any) -> Any:
        out = real(self, *a, **kw)
        os.kill(os.getpid(), signal.SIGKILL)
        return out

    rest.RestDispatcher.call = call_then_die  # type: ignore[method-assign]
    with Host(home, config=HostConfig(watch=False)) as host:
        runner = next(iter(host.runners.values()))
        rec = host.installs.get(runner.install_id)  # the route is a livechat manager's
        assert rec is not None and rec.app_user_id
        host.server.roles_assign(SYSTEM, rec.app_user_id, "livechat-manager")
        runner.submit("livechat.room_started", {"name": "dep-crash"}, 15.0).result(30)


if __name__ == "__main__":
    main()
