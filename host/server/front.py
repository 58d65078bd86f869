"""The REST front: the embedded server's REST API (and the console) served from a process of
its own, beside the host that runs the apps (`stockade serve --rest-process`).

Why: the host's threads share one interpreter lock, and under load the REST API's HTTP parsing
and handlers took about a quarter of it (docs/BENCH.md, "Load through the REST API"): every
request delayed the apps' bridge calls. In a process of its own the REST API runs on the other
core, as a Rocket.Chat workspace does beside the host.

What crosses between them, over a socketpair only the two hold (`host.server.frontlink`):

- front -> host, `ev`: the events of a write the front committed, in commit order, with the
  commit's monotonic time. The host emits them to its own subscribers as if its server had
  committed them (`ServerCore.emit_committed`): the apps see no difference.
- front -> host, `call`: the pre-send hook (a message a visitor or agent sends runs the apps'
  hooks before it is written) and the console's question of which policy revision the host
  enforces. The host answers each hook on a thread of a small pool and the question on a
  thread of its own, never behind the hooks (`ret`); a hook that raises `Prevented` crosses as
  a refusal naming the app.
- The front fails closed: no answer from the host within `hook_wait_s` (or a link that breaks)
  prevents the message. The front exits when its link closes; `serve` starts another when one
  exits, and stops when they keep exiting (`host/cli/serve_front.py`): neither serves without
  the other.

Both open the same store; SQLite's WAL (or PostgreSQL) orders their writes. The front is the
host's own code, run as the host's user: it is not an app and is not confined.
"""
from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from host.server.errors import Prevented, ServerError
from host.server.events import PreSendHook
from host.server.frontlink import Link, LinkBroken

if TYPE_CHECKING:
    from host.home import Home
    from host.server.core import ServerCore

log = logging.getLogger("stockade.server.front")

# How long the host waits for a new front to say it serves. Its start imports the web stack
# and opens the server's store: 0.6-0.7 s here; a front that takes longer is broken.
START_TIMEOUT_S = 30.0
# Threads answering the front's calls at once: each pre-send hook holds one for up to the
# apps' hook deadlines, and a message is a visitor waiting; more than this queue.
CALL_THREADS = 8
# Threads answering the front's other questions (which policy revision the host enforces, on
# each console policy page): apart from the hooks' threads, so a page never waits behind
# messages the apps are judging (eight of them held every hook thread, and the console said
# the revision was unknown). Each answer is a read of the host's memory.
QUESTION_THREADS = 1
# How long `stop` waits for the front to exit after its link closes, before killing it.
STOP_TIMEOUT_S = 10.0


class FrontFailed(RuntimeError):
    """The front did not start: it exited, or did not say it serves within the start timeout."""


class RestFront:
    """A running front process, and the host side of its link."""

    def __init__(self, home: Home, listener: socket.socket, *,
                 server: ServerCore | None = None, pre_send: PreSendHook | None = None,
                 enforced: Callable[[], str | None] = lambda: None,
                 hook_wait_s: float = 30.0, entry: str = "host.server.front_proc",
                 spread: Callable[[int], None] | None = None,
                 widget_rate: int | None = None, trusted_proxies: Sequence[str] = (),
                 hosts: Sequence[str] = ()) -> None:
        """`entry`: the front's module (`python -m`): the REST API alone by default; `serve`
        names `host.console.front_main`, the console beside it (a room above this one).
        `spread`: called with the front's pid as it starts (`Affinity.spread`: a host whose
        threads share one core lets its front run on every core). `widget_rate`,
        `trusted_proxies`, `hosts`: the REST app's (`create_app`; None: its default rate)."""
        self.home = home
        self.listener = listener
        self.server = server
        self.pre_send = pre_send
        self.enforced = enforced
        self.hook_wait_s = hook_wait_s
        self.entry = entry
        self.spread = spread
        self.widget_rate = widget_rate
        self.trusted_proxies = list(trusted_proxies)
        self.hosts = list(hosts)
        self.proc: subprocess.Popen[bytes] | None = None
        self.link: Link | None = None
        self.exited = threading.Event()  # the link broke: the front is gone (or going)
        self._up = threading.Event()
        self._reading = False  # the reader thread runs (it sets `exited` as it ends)
        self._relaying = threading.local()  # the commit time of the event being relayed
        self._calls = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="stockade-front-call")
        self._questions = ThreadPoolExecutor(QUESTION_THREADS,
                                             thread_name_prefix="stockade-front-ask")

    def start(self, timeout_s: float = START_TIMEOUT_S) -> RestFront:
        """Start the front on the listener and wait until it serves. Raises FrontFailed."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fds = (theirs.fileno(), self.listener.fileno())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.entry, str(fds[0]), str(fds[1])],
            # Its own session: a terminal's Ctrl-C (or a signal to serve's process group)
            # reaches the host alone, which then stops the front by closing the link: one
            # owner decides when serving ends, and says why.
            pass_fds=fds, stdin=subprocess.DEVNULL, start_new_session=True)
        if self.spread is not None:
            # Before the hello: the front starts no thread until it has read it, so every
            # thread it starts inherits this.
            self.spread(self.proc.pid)
        theirs.close()
        self.link = Link(ours)
        # The store's URL may hold a password: on the link, never on the front's command line.
        self.link.send({"t": "hello", "root": str(self.home.root),
                        "store_url": self.home.store_url, "hook": self.pre_send is not None,
                        "hook_wait_s": self.hook_wait_s, "widget_rate": self.widget_rate,
                        "trusted_proxies": self.trusted_proxies, "hosts": self.hosts})
        threading.Thread(target=self._read, name="stockade-front", daemon=True).start()
        self._reading = True
        deadline = time.monotonic() + timeout_s
        while not self._up.wait(0.05):
            if self.exited.is_set() or time.monotonic() > deadline:
                self.stop()
                raise FrontFailed("the REST front did not start (its errors are above)")
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def commit_time(self) -> float | None:
        """While the calling thread relays a front's event: the monotonic time the front
        committed it (the load bench counts an event's delay from there)."""
        at: float | None = getattr(self._relaying, "at", None)
        return at

    def wait(self, stop: threading.Event) -> None:
        """Until `stop` is set or the front exits."""
        while not stop.is_set() and not self.exited.is_set():
            stop.wait(0.2)

    def stop(self) -> None:
        """Tell the front to stop, relay what it commits meanwhile, then reap it.

        The host stops sending on the link (the front sees it closed, stops taking connections,
        finishes the requests in flight and exits) but reads on until the front's end closes:
        a write the front commits while it finishes is in the store, and its events must reach
        the apps as in `serve --rest-in-host` (closing the link outright dropped them)."""
        if self.link is not None:
            self.link.stop_sending()
        if self.proc is not None:
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("the REST front did not exit in %.0f s; killed", STOP_TIMEOUT_S)
                self.proc.kill()
                self.proc.wait()
        if self.link is not None:
            if self._reading:
                # The front has exited: its end is closed, and the reader ends once it has
                # relayed what the front sent last.
                self.exited.wait(STOP_TIMEOUT_S)
            self.link.close()
        self._calls.shutdown(wait=False, cancel_futures=True)
        self._questions.shutdown(wait=False, cancel_futures=True)

    # -- the host side of the link -------------------------------------------------------------

    def _read(self) -> None:
        assert self.link is not None
        try:
            while True:
                msg = self.link.recv()
                kind = msg.get("t")
                if kind == "ev":
                    self._relay(msg)
                elif kind == "call":
                    pool = self._calls if msg.get("fn") == "pre_send" else self._questions
                    pool.submit(self._answer, msg)
                elif kind == "up":
                    self._up.set()
                else:
                    log.warning("the REST front sent an unknown frame %r; ignored", kind)
        except LinkBroken as exc:
            if not self.exited.is_set():
                log.info("the REST front's link closed: %s", exc)
        except Exception:  # the relay's own failure: the front is then stopped, not half-served
            log.exception("relaying the REST front's events failed; stopping the front")
            if self.link is not None:
                self.link.close()
        finally:
            self.exited.set()

    def _relay(self, msg: dict[str, Any]) -> None:
        if self.server is None:
            return  # no apps run (`serve --no-apps`): nobody to tell
        events = [(str(name), payload) for name, payload in msg["events"]]
        self._relaying.at = float(msg["at"])
        try:
            self.server.emit_committed(events)
        finally:
            self._relaying.at = None

    def _answer(self, msg: dict[str, Any]) -> None:
        call_id, fn = msg.get("id"), msg.get("fn")
        reply: dict[str, Any] = {"t": "ret", "id": call_id}
        try:
            if fn == "pre_send" and self.pre_send is not None:
                reply["ok"] = self.pre_send(msg["arg"])
            elif fn == "enforced":
                reply["ok"] = self.enforced()
            else:
                reply["err"] = {"message": f"the host answers no call {fn!r}"}
        except Prevented as exc:
            reply["err"] = {"message": exc.message, "prevented_by": exc.prevented_by}
        except ServerError as exc:
            reply["err"] = {"message": exc.message}
        except Exception:  # the host's bug: the front fails closed on any refusal
            log.exception("answering the REST front's %r call failed", fn)
            reply["err"] = {"message": "the host failed to answer"}
        try:
            assert self.link is not None
            self.link.send(reply)
        except LinkBroken:
            pass  # the front is gone: nobody waits for the answer

