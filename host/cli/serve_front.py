"""`stockade serve` (`--rest-process`, the default): the REST API and the console served by a
front process (`host.server.front`) while this process runs the apps.

`serve` then waits on the front until it is interrupted or terminated, or the host loses its
lease on a shared store. A front that exits on its own is started again (the operator sees a
line saying so), and so is one that stops answering (`host.server.frontprobe`: silent for
`--front-timeout` seconds, it is killed first); one that keeps stopping stops `serve` (exit 1),
never leaving a host that runs apps no request can reach.
"""
from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from host.cli.output import EXIT_NEGATIVE, err_console, fail
from host.ledger.records import AuditRecord
from host.server.embedded import EmbeddedServer
from host.server.front import FrontFailed, RestFront
from host.server.frontprobe import FrontProbe, probe_address

if TYPE_CHECKING:
    from host.home import Home
    from host.runtime import Host

log = logging.getLogger("stockade.serve")

# A front that stops is started again, after a pause that doubles with each stop: a crash
# (a bug in a handler, the OOM killer) costs the requests in flight, not the service. More than
# MAX_RESTARTS stops in RESTART_WINDOW_S is a front that cannot run here (a broken store, a
# bad install): `serve` then stops, the apps too, and says why, rather than loop.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
RESTART_PAUSE_S = 0.25
MAX_RESTART_PAUSE_S = 4.0


def serve_front(home: Home, sock: socket.socket, app_host: Host | None,
                enforced: Callable[[], str | None], timeout_s: float = 30.0,
                widget_rate: int | None = None, trusted_proxies: Sequence[str] = (),
                hosts: Sequence[str] = ()) -> None:
    """Serve through a front process until interrupted or terminated, restarting a front that
    stops, or that answers nothing for `timeout_s` (0: never probed) (the host keeps the
    listener: connections wait in its backlog meanwhile); a front that stops more than
    MAX_RESTARTS times in RESTART_WINDOW_S stops `serve` (exit 1)."""
    server = app_host.server if app_host is not None else None
    assert server is None or isinstance(server, EmbeddedServer)  # a workspace serves its own

    def start() -> RestFront:
        return RestFront(home, sock, server=server,
                         pre_send=app_host.pre_send if app_host is not None else None,
                         enforced=enforced, entry="host.console.front_main",
                         spread=app_host.affinity.spread if app_host is not None else None,
                         widget_rate=widget_rate, trusted_proxies=trusted_proxies,
                         hosts=hosts).start()

    try:
        front = start()
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
    stops: deque[float] = deque()
    hung: list[str] = []  # why the current front was killed as hung, if it was

    def watch(front: RestFront) -> FrontProbe | None:
        hung.clear()
        if timeout_s <= 0:
            return None

        def on_hung(why: str) -> None:
            hung.append(why)
            log.warning("the REST front (process %s) gave %s: killed", front.pid, why)
            if front.proc is not None:
                front.proc.kill()  # its link breaks: `wait` returns, and another starts

        return FrontProbe(probe_address(sock), timeout_s, on_hung).start()

    probe = watch(front)
    try:
        while True:
            front.wait(stop)
            if probe is not None:
                probe.stop()
            front.stop()
            if stop.is_set():
                return
            why = hung[0] if hung else \
                f"exit code {front.proc.returncode if front.proc is not None else None}"
            again = _restarted(start, stop, stops, why, app_host)
            if again is None:
                return
            front = again
            probe = watch(front)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if probe is not None:
            probe.stop()
        front.stop()


def _restarted(start: Callable[[], RestFront], stop: threading.Event, stops: deque[float],
               why: str, app_host: Host | None) -> RestFront | None:
    """A new front after one stopped (`why`), after a pause that doubles with each stop in the
    window; None if `stop` was set meanwhile. Exits 1 past MAX_RESTARTS in the window. Each
    stop is a record in the host's chain."""
    while True:
        now = time.monotonic()
        stops.append(now)
        while stops and stops[0] < now - RESTART_WINDOW_S:
            stops.popleft()
        _audit_stop(app_host, f"the REST front stopped ({why}); stop {len(stops)} in "
                    f"{RESTART_WINDOW_S:g} s" + ("; serve stops" if len(stops) > MAX_RESTARTS
                                                 else "; another starts"))
        if len(stops) > MAX_RESTARTS:
            fail(f"the REST front stopped {len(stops)} times in {RESTART_WINDOW_S:g} s (last: "
                 f"{why}); stopped serving the apps too",
                 hint="its errors are above; start `stockade serve` again, or "
                 "`stockade serve --rest-in-host`", code=EXIT_NEGATIVE)
        pause = min(RESTART_PAUSE_S * 2 ** (len(stops) - 1), MAX_RESTART_PAUSE_S)
        err_console.print(f"the REST front stopped ({why}); starting another in {pause:g} s "
                          f"({len(stops)} of at most {MAX_RESTARTS} in {RESTART_WINDOW_S:g} s)",
                          highlight=False)
        if stop.wait(pause):
            return None
        try:
            front = start()
        except FrontFailed as exc:
            why = str(exc)
            continue
        err_console.print(f"REST front: process {front.pid}", highlight=False)
        return front


def _audit_stop(app_host: Host | None, detail: str) -> None:
    """A front's stop as a `supervisor` record in the host's chain, as an app child's death is
    (requests in flight at the stop failed, and events it committed may not have crossed).
    Best effort: a record the chain cannot take is logged, never a reason not to restart."""
    if app_host is None:
        return
    try:
        app_host.ledger.append(AuditRecord(kind="supervisor", event="front_stopped",
                                           detail=detail[:500]))
    except Exception as exc:  # noqa: BLE001 - the restart goes on; the gap is reported
        log.warning("the REST front's stop could not be recorded (%s)", exc)
