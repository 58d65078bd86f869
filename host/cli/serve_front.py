"""`stockade serve` (`--rest-process`, the default): the REST API and the console served by a
front process (`host.server.front`) while this process runs the apps.

`serve` then waits on the front: it stops (and stops the apps) when the front exits, when it is
interrupted or terminated, or when the host loses its lease on a shared store. A front that
exits on its own is an error the operator sees (exit 1), never a host that runs apps no request
can reach.
"""
from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from host.cli.output import EXIT_NEGATIVE, err_console, fail
from host.server.embedded import EmbeddedServer
from host.server.front import FrontFailed, RestFront

if TYPE_CHECKING:
    from host.home import Home
    from host.runtime import Host


def serve_front(home: Home, sock: socket.socket, app_host: Host | None,
                enforced: Callable[[], str | None]) -> None:
    """Serve through a front process until interrupted, terminated, or the front exits."""
    server = app_host.server if app_host is not None else None
    assert server is None or isinstance(server, EmbeddedServer)  # a workspace serves its own
    front = RestFront(home, sock, server=server,
                      pre_send=app_host.pre_send if app_host is not None else None,
                      enforced=enforced, entry="host.console.front_main")
    try:
        front.start()
    except FrontFailed as exc:
        fail(str(exc), hint="run `stockade doctor`; or `stockade serve --rest-in-host`",
             code=EXIT_NEGATIVE)
    err_console.print(f"REST front: process {front.pid}", highlight=False)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if app_host is not None:
        lost = app_host.lease_lost

        def stop_when_lost() -> None:
            lost.wait()
            stop.set()

        threading.Thread(target=stop_when_lost, name="stockade-lease-watch", daemon=True).start()
    try:
        front.wait(stop)
    finally:
        signal.signal(signal.SIGTERM, previous)
        front.stop()
    if front.exited.is_set() and not stop.is_set():
        code = front.proc.returncode if front.proc is not None else None
        fail(f"the REST front stopped (exit code {code}); stopped serving the apps too",
             hint="its errors are above; start `stockade serve` again",
             code=EXIT_NEGATIVE)
