"""Whether a REST front still answers: the liveness probe `serve` runs beside each front.

`serve` starts the front again when it exits (`host.cli.serve_front`). A front that hangs
without exiting (a handler spinning on its event loop, a deadlock, a SIGSTOP) held the listener
while no request was answered, and nothing noticed: the apps ran on, unreachable, until an
operator did. The probe asks the front, over the listener the clients use, what the cheapest
route answers (`GET /api/info`, served on the event loop with no store and no thread); when no
answer came for `limit_s`, it says so (`on_hung`), and `serve` kills the front and starts
another, as after an exit. Slow answers are answers, and so are refusals (the 503 of a front
past its connection cap): only silence for the whole limit counts.
"""
from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger("stockade.serve")

# The most time between two probes (s); a shorter limit probes at least three times within it.
PROBE_EVERY_S = 5.0


def probe_address(listener: socket.socket) -> tuple[str, int]:
    """Where to reach what `listener` serves: its own address, loopback for a wildcard one."""
    host, port = listener.getsockname()[:2]
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 (what a wildcard bind names)
    return wildcard.get(host, host), int(port)


def answers(address: tuple[str, int], timeout_s: float) -> bool:
    """Whether `GET /api/info` at `address` gets an HTTP answer within `timeout_s`, whatever
    its status. Past its connection cap a live front answers every new connection with a 503
    from its own event loop (`host.server.listen`): counting only a 200 let anonymous clients
    holding the cap's worth of idle connections have a healthy front killed at each timeout,
    and `serve` stop for good after MAX_RESTARTS of them. A hung front answers nothing."""
    conn = http.client.HTTPConnection(address[0], address[1], timeout=timeout_s)
    try:
        conn.request("GET", "/api/info", headers={"Connection": "close"})
        conn.getresponse()  # a status line came back: the front's loop is running
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class FrontProbe:
    """Probes one front from a thread of its own until `stop`, or until the front has been
    silent for `limit_s`: then calls `on_hung(why)` once and ends."""

    def __init__(self, address: tuple[str, int], limit_s: float,
                 on_hung: Callable[[str], None]) -> None:
        self.address = address
        self.limit_s = limit_s
        self.every_s = min(PROBE_EVERY_S, limit_s / 3)
        self._on_hung = on_hung
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stockade-front-probe",
                                        daemon=True)

    def start(self) -> FrontProbe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        last_answer = time.monotonic()
        while not self._stop.wait(self.every_s):
            if answers(self.address, self.every_s):
                last_answer = time.monotonic()
                continue
            silent = time.monotonic() - last_answer
            if silent >= self.limit_s and not self._stop.is_set():
                self._on_hung(f"no answer to GET /api/info for {silent:.0f} s")
                return
