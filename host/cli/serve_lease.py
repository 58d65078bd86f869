"""`serve` stops when its host loses its lease on a shared store.

A host whose lease is lost admits no call (another host may settle what it admits:
`host.ledger.storelease`). Serving on would leave every app running, each event's handler
refused call after call, and nothing but a log line telling the operator. So `serve` stops its
HTTP server, stops the host, and exits 1 saying why: a restart (by hand, or a service manager's
`Restart=on-failure`) takes a new lease under a new host id.
"""
from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

from host.cli.output import EXIT_NEGATIVE, fail

if TYPE_CHECKING:
    import uvicorn

    from host.runtime import Host


def serve_until_lease_lost(server: uvicorn.Server, app_host: Host | None,
                           sock: socket.socket) -> None:
    """Run `server` on `sock` until interrupted, or until `app_host` loses its lease."""
    if app_host is not None:
        lost = app_host.lease_lost

        def stop_serving() -> None:
            lost.wait()
            server.should_exit = True

        threading.Thread(target=stop_serving, name="stockade-lease-watch", daemon=True).start()
    server.run(sockets=[sock])


def exit_if_lease_lost(app_host: Host | None) -> None:
    """After serving: exit 1 with the reason if the lease was lost (the host is stopped)."""
    if app_host is not None and app_host.lease_lost.is_set():
        fail(f"stopped serving: this host lost its lease on the shared store "
             f"({app_host.lease_lost_why}); it admitted no call since",
             hint="start `stockade serve` again: a new start takes a new lease (under a service "
             "manager, restart on failure)", code=EXIT_NEGATIVE)
