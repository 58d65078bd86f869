"""Host side of the zygote: start it, ask it to fork children, hear about their exits.

The zygote is started from the host's main thread (the parent-death signal follows the thread
that forked, not the process) as a fresh interpreter with an empty environment, so nothing of
the host's memory — signing keys, tokens of other apps, stores — is ever in it or its children.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Container
from typing import Any

from sandbox.zygote import MAX_CONTROL_MESSAGE

ExitCallback = Callable[[int, int], None]  # (pid, wait status)

# How long a starting zygote may take to say it is ready (s): a fresh interpreter importing the
# sandbox, well under a second here, seconds on a loaded machine. Guards the spawner's one keeper
# thread, which starts a replacement zygote while every app start waits on it: one that hung
# before its ready answer held that thread for good, and every later start failed.
READY_TIMEOUT_S = 30.0


class ZygoteError(Exception):
    pass


class Zygote:
    def __init__(self, on_exit: ExitCallback,
                 on_gone: Callable[[Zygote], None] | None = None) -> None:
        self._on_exit = on_exit
        # Told (on the listener's thread) once the zygote's channel closes: it died, or was
        # closed. Its children die with it (PDEATHSIG) and no one will report their exits.
        self._on_gone = on_gone
        host_end, zyg_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = host_end
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "sandbox.zygote", str(zyg_end.fileno()),
             str(os.getpid())],
            pass_fds=(zyg_end.fileno(),),
            env={},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            cwd="/",
            close_fds=True,
            # Its own process group: a Ctrl-C at the terminal goes to the foreground group (the
            # CLI) only, never to a zygote still importing before it can ignore SIGINT; the
            # host stops it (and PDEATHSIG covers a dead host).
            process_group=0,
        )
        zyg_end.close()
        self._sock.settimeout(READY_TIMEOUT_S)
        try:
            ready = json.loads(self._sock.recv(MAX_CONTROL_MESSAGE) or b"{}")
        except (OSError, ValueError):  # TimeoutError is an OSError
            ready = {}
        if ready.get("op") != "ready":
            self.proc.kill()
            self.proc.wait()
            self._sock.close()
            raise ZygoteError(f"zygote did not start (no ready answer in {READY_TIMEOUT_S:g} s, "
                              "or it exited)")
        self._sock.settimeout(None)
        self.pid = int(ready["pid"])
        self.netns = bool(ready["netns"])
        self._lock = threading.Lock()
        # request id -> (set when answered, [pid] once forked, [error] if fork(2) failed)
        self._pending: dict[int, tuple[threading.Event, list[int], list[str]]] = {}
        self._closed = False
        # Forks whose reply came too late (`fork` timed out): the child they made is killed on
        # arrival, and its exit, reported by pid, is not passed on (no caller knows that pid; a
        # later child given the same number would look dead at birth).
        self._abandoned: set[int] = set()  # request ids
        self._orphans: set[int] = set()  # pids of children such requests made
        self._thread = threading.Thread(target=self._listen, name="zygote-listener", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while True:
            try:
                data = self._sock.recv(MAX_CONTROL_MESSAGE)
            except OSError:
                data = b""
            if not data:
                with self._lock:
                    self._closed = True
                    for ev, _box, _err in self._pending.values():
                        ev.set()
                if self._on_gone is not None:
                    self._on_gone(self)
                return
            msg: dict[str, Any] = json.loads(data)
            if msg.get("op") in ("forked", "failed"):
                with self._lock:
                    waiter = self._pending.pop(int(msg["id"]), None)
                    late = int(msg["id"]) in self._abandoned
                    self._abandoned.discard(int(msg["id"]))
                if late and msg["op"] == "forked":
                    with self._lock:
                        self._orphans.add(int(msg["pid"]))
                    self.kill(int(msg["pid"]))
                elif waiter:
                    if msg["op"] == "forked":
                        waiter[1].append(int(msg["pid"]))
                    else:
                        waiter[2].append(str(msg.get("error", "unknown error"))[:200])
                    waiter[0].set()
            elif msg.get("op") == "exit":
                with self._lock:
                    orphan = int(msg["pid"]) in self._orphans
                    self._orphans.discard(int(msg["pid"]))
                if not orphan:
                    self._on_exit(int(msg["pid"]), int(msg["status"]))

    def fork(self, fds: tuple[int, int, int], limits: dict[str, int], timeout: float = 5.0,
             cgroup: str | None = None) -> int:
        """Ask for one confined child on these (chan_in, chan_out, err) descriptors, which
        joins the memory cgroup `cgroup` first (`host.supervise.memcg`) when one is given."""
        ev = threading.Event()
        box: list[int] = []
        error: list[str] = []
        with self._lock:
            if self._closed:
                raise ZygoteError("zygote is gone")
            req_id = _request_id(self._pending, self._abandoned)
            self._pending[req_id] = (ev, box, error)
            try:
                socket.send_fds(
                    self._sock,
                    [json.dumps({"op": "fork", "id": req_id, "limits": limits,
                                 "cgroup": cgroup}).encode()],
                    list(fds),
                )
            except OSError as exc:  # its end closed under us (EPIPE): it is gone
                del self._pending[req_id]
                raise ZygoteError("zygote is gone") from exc
        if not ev.wait(timeout):
            with self._lock:
                if self._pending.pop(req_id, None) is not None:
                    self._abandoned.add(req_id)  # its child, if one comes, is killed
            if box:  # answered between the wait's end and the lock: the child is ours
                return box[0]
            raise ZygoteError("zygote did not fork in time")
        if error:
            raise ZygoteError(f"zygote could not fork: {error[0]}")
        if not box:
            raise ZygoteError("zygote is gone")
        return box[0]

    @property
    def gone(self) -> bool:
        """The zygote's end of the socket closed: it died (or was closed); it forks no more."""
        return self._closed

    def kill(self, pid: int) -> None:
        """SIGKILL child `pid` through the zygote, its parent: the fallback where the kernel
        has no pidfds (a pid the zygote has reaped is ignored there, never a reused number)."""
        with self._lock:
            if self._closed:
                return
            try:
                self._sock.send(json.dumps({"op": "kill", "pid": pid}).encode())
            except OSError:
                pass  # the zygote is gone, and its children with it (PDEATHSIG)

    def close(self) -> None:
        try:
            self._sock.close()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()


# A fork request's id is at most this (JSON carries it exactly: below 2**53).
MAX_FORK_ID = (1 << 53) - 1


def _request_id(*taken: Container[int]) -> int:
    """A fork request's id: drawn at random, never counted. The child the request makes is a
    fork of the zygote and inherits its copy of the request; a counter there told code that
    escaped RestrictedPython, between two of its own children, how many the host had forked for
    other apps meanwhile (as `Child.next_frame_id` says for event ids)."""
    while True:
        req_id = secrets.randbelow(MAX_FORK_ID) + 1
        if not any(req_id in t for t in taken):
            return req_id

