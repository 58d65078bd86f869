"""The REST front's process (`host.server.front`): `python -m host.server.front_proc LINK LISTEN`
(the REST API alone) or `python -m host.console.front_main LINK LISTEN` (with the console beside
it, as `serve` runs it), started by the host with one end of its link and the listening socket as
inherited descriptors.

It serves the REST API and the console on the listener with the embedded server over the
home's store, forwards each committed write's events to the host, and asks the host for the
pre-send hook's verdict before a message is written (no verdict in time: the message is
prevented). It exits when its link closes.
"""
from __future__ import annotations

import itertools
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Any

from host import logline
from host.server.errors import Prevented
from host.server.events import Subscriber
from host.server.frontlink import Link, LinkBroken
from host.server.listen import Listener

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from host.home import Home
    from host.server.embedded import EmbeddedServer

    # What a front serves beside the REST API, made in the front (the console: a room above).
    Mounts = Callable[[Home, EmbeddedServer, "HostCalls"], Sequence[BaseRoute]]

log = logging.getLogger("stockade.server.front")

# How long the console waits for the host to say which policy revision it enforces.
ENFORCED_WAIT_S = 2.0


class HostCalls:
    """The front's side of the link: calls to the host, answered by id on the reader thread."""

    def __init__(self, link: Link, hook_wait_s: float) -> None:
        self.link = link
        self.hook_wait_s = hook_wait_s
        self._ids = itertools.count(1)
        self._waiting: dict[int, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.broken = threading.Event()

    def call(self, fn: str, arg: Any, wait_s: float) -> dict[str, Any]:
        """The host's reply ({"ok": ...} or {"err": {...}}). Raises LinkBroken or TimeoutError."""
        call_id = next(self._ids)
        fut: Future[dict[str, Any]] = Future()
        with self._lock:
            if self.broken.is_set():
                raise LinkBroken("the host is gone")
            self._waiting[call_id] = fut
        try:
            self.link.send({"t": "call", "id": call_id, "fn": fn, "arg": arg})
            return fut.result(wait_s)
        except FutureTimeout:
            raise TimeoutError(f"the host did not answer {fn} in {wait_s:g} s") from None
        finally:
            with self._lock:
                self._waiting.pop(call_id, None)

    def pre_send(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The server's pre-send hook: the host runs the apps' hooks and answers."""
        try:
            reply = self.call("pre_send", message, self.hook_wait_s)
        except (LinkBroken, TimeoutError) as exc:
            # Not sending is the safe reading of no verdict (as the host's own hook fails closed).
            raise Prevented(f"the host did not answer the pre-send hook ({exc}); the message was "
                            "not sent") from None
        err = reply.get("err")
        if isinstance(err, dict):
            raise Prevented(str(err.get("message") or "prevented by the host"),
                            prevented_by=err.get("prevented_by"))
        out = reply.get("ok")
        return out if isinstance(out, dict) else None

    def enforced(self) -> str | None:
        """The policy revision the host decides with now (None: unknown, or no apps run)."""
        try:
            out = self.call("enforced", None, ENFORCED_WAIT_S).get("ok")
        except (LinkBroken, TimeoutError):
            return None
        return out if isinstance(out, str) else None

    def read(self, on_close: Callable[[], None]) -> None:
        """The reader thread: hand each reply to its caller; at the link's close, fail every
        caller still waiting and call `on_close`."""
        try:
            while True:
                msg = self.link.recv()
                if msg.get("t") != "ret":
                    continue
                with self._lock:
                    fut = self._waiting.get(int(msg.get("id") or 0))
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except LinkBroken:
            pass
        finally:
            with self._lock:
                self.broken.set()
                waiting = list(self._waiting.values())
            for fut in waiting:
                if not fut.done():
                    fut.set_exception(LinkBroken("the host is gone"))
            on_close()


def forwarder(link: Link) -> Subscriber:
    """A server subscriber that sends each committed event to the host, in commit order."""
    def forward(name: str, payload: dict[str, Any]) -> None:
        link.send({"t": "ev", "at": time.monotonic(), "events": [[name, payload]]})
    return forward


def main(argv: list[str], mounts: Mounts | None = None) -> int:
    """Serve the REST API (and what `mounts` adds beside it) until the link closes."""
    logline.install("stockade front: ")  # its log lines inert (DESIGN rule 12)
    link = Link(socket.socket(fileno=int(argv[1])))
    listener = Listener(fileno=int(argv[2]))  # its kernel queue kept (host.server.listen)
    try:
        hello = link.recv()
    except LinkBroken:
        return 1
    import uvicorn

    from host.clock import SystemClock
    from host.home import Home
    from host.server.embedded import EmbeddedServer
    from host.server.listen import http_config
    from host.server.rest import create_app

    home = Home(Path(hello["root"]), hello.get("store_url"))
    server = EmbeddedServer(home.server_store, SystemClock())
    calls = HostCalls(link, float(hello.get("hook_wait_s") or 30.0))
    if hello.get("hook"):
        server.set_pre_send_hook(calls.pre_send)
    server.subscribe(forwarder(link))
    routes = mounts(home, server, calls) if mounts is not None else []
    # The header block capped in size and time, as on every listener (host/server/listen.py).
    rate = hello.get("widget_rate")
    # Checked by `serve`; parsed again by create_app (a bad one stops the front, loudly).
    proxies = [str(p) for p in hello.get("trusted_proxies") or ()]
    hosts = [str(n) for n in hello.get("hosts") or ()]  # the Host names beside loopback's
    app = create_app(server, mounts=routes, trusted_proxies=proxies, hosts=hosts,
                     **({} if rate is None else {"widget_rate": int(rate)}))
    uv = uvicorn.Server(http_config(app, log_level="warning", lifespan="off"))

    def closed() -> None:
        uv.should_exit = True

    threading.Thread(target=calls.read, args=(closed,), name="front-link", daemon=True).start()

    def say_up() -> None:
        while not uv.started and not uv.should_exit:
            time.sleep(0.01)
        if uv.started:
            try:
                link.send({"t": "up"})
            except LinkBroken:
                uv.should_exit = True

    threading.Thread(target=say_up, name="front-up", daemon=True).start()
    uv.run(sockets=[listener])
    link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
