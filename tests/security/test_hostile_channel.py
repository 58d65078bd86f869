"""An escaped child on its channel: what it can make the host do with its descriptors, its
shutdown and its log (DESIGN rules 4, 5, 13).

The child here is `sechelp.FAKE_CHILD`: unrestricted Python speaking the protocol, as an app that
escaped RestrictedPython could. It stops reading its channel, fills it exactly, or floods Log
frames; the host side is the real `Child`, `AppRunner`, watchdog and `run_snippet`.

- A kill (deadline, revocation, stop) from another thread while the runner is blocked writing
  to the child must never free the descriptor number under that write: the next file the host
  opens would take the number and receive the rest of the frame (app-controlled bytes). The
  test keeps a copy of the child's reading end, so the write stays blocked, and fills every
  free number up to the channel's with files of its own, then lets the write go on.
- `stockade sandbox exec` ends in bounded time though the child filled its channel exactly and
  stopped reading before the host's Shutdown.
- Log output per event and per load is capped on the host: the overflow is dropped, counted and
  noted once in the app's log, whatever the child's own print cap says.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sechelp import start_fake_child

import host.supervise.sandbox_exec as sandbox_exec
from host.runtime import Host
from host.supervise.affinity import Affinity
from host.supervise.child import Child, ChildDied, ChildLimits
from host.supervise.logcap import MAX_LOG_CHARS_PER_EVENT, MAX_LOG_LINES_PER_EVENT
from host.supervise.supervisor import AppRunner
from sandbox import frames
from sandbox.frames import Reply, WireError
from sandbox.restricted import PRINT_TOTAL_CAP
from sandbox.wire import encode

MARK = "APP-CONTROLLED-BYTES-"
# A result (or payload) far over a pipe's 64 KiB: the host's write of it blocks on a child that
# does not read.
BIG = [MARK + "X" * 60_000 for _ in range(8)]


class _Gate:
    def handle(self, _session: Any, _action: str, _args: dict[str, Any]) -> Any:
        return BIG  # what a bridge call returns (e.g. data the app stored earlier)


class FakeHost:
    """The `RunnerHost` an `AppRunner` needs: its child is a fake one, its log the real
    `Host.write_app_log` into `logs`, counted."""

    def __init__(self, steps: list[Any], logs: Path, keep_reader: list[int] | None = None
                 ) -> None:
        self.steps, self.keep_reader = steps, keep_reader
        self.home = SimpleNamespace(logs_dir=logs)
        self.gate = _Gate()
        self.affinity = Affinity(enabled=False)
        self.children: list[Child] = []
        self.logged: list[str] = []

    def first_job_over(self) -> None:
        pass  # no pre-fork pool here

    def start_child(self, runner: AppRunner) -> Child:
        child = start_fake_child(self.steps, self.keep_reader)
        self.children.append(child)
        child.handshake("tok", lambda _t: None, degraded=False)
        runner.session = SimpleNamespace(session_id=child.session_id,  # type: ignore[assignment]
                                         revoked="")
        return child

    def audit_supervisor(self, runner: AppRunner, event: str, detail: str) -> None:
        pass

    def write_app_log(self, install_id: str, text: str, truncated: bool) -> None:
        self.logged.append(text)
        Host.write_app_log(self, install_id, text, truncated)  # type: ignore[arg-type]

    def note_app_log(self, install_id: str, text: str) -> None:
        self.logged.append(f"[stockade] {text}")  # the host's own note, told apart
        Host.note_app_log(self, install_id, text)  # type: ignore[arg-type]

    def event_allowed(self, install: Any, event: str, decided_under: object,
                      payload: Any) -> bool:
        return True  # no policy here: every event the app handles reaches it


@pytest.fixture
def hosts() -> Iterator[list[tuple[FakeHost, AppRunner]]]:
    made: list[tuple[FakeHost, AppRunner]] = []
    yield made
    for host, runner in made:
        runner.stop("test over")
        for child in host.children:
            child.kill("test over")
            child.close()


def _runner(hosts: list[tuple[FakeHost, AppRunner]], steps: list[Any], logs: Path,
            keep_reader: list[int] | None = None) -> tuple[FakeHost, AppRunner]:
    host = FakeHost(steps, logs, keep_reader)
    install = SimpleNamespace(install_id="inst-1", app_id="hostile", crash_stop=None,
                              settings={}, secret_keys=frozenset())
    runner = AppRunner(host, install)  # type: ignore[arg-type]
    hosts.append((host, runner))
    return host, runner


def _wait(cond: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.005)


def _queued(fd: int) -> int:
    """Bytes waiting in the pipe whose reading end is `fd`."""
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little")


# ---- 1. a kill never frees a descriptor another thread is writing to ----------------------

@pytest.mark.parametrize("frame, killer", [
    ("reply", "deadline"),  # the watchdog kills while the runner writes a bridge Reply
    ("reply", "revoked"),   # `AppRunner.kill_child` (a revocation) from another thread
    ("event", "stop"),      # `AppRunner.stop` while the runner writes an Event
])
def test_a_kill_never_hands_the_channels_number_to_another_file(
        hosts: list[tuple[FakeHost, AppRunner]], tmp_path: Path, frame: str, killer: str) -> None:
    keep: list[int] = []
    if frame == "reply":  # asks once, then never reads the Reply
        steps: list[Any] = [["hello"], ["event"],
                            ["send", {"t": "call", "id": 1, "action": "persistence.get",
                                      "args": {"key": "k"}}], ["sleep", 60]]
        payload: dict[str, Any] = {}
    else:  # never reads the Event
        steps, payload = [["hello"], ["sleep", 60]], {f"k{i}": s for i, s in enumerate(BIG)}
    host, runner = _runner(hosts, steps, tmp_path, keep)
    runner.ensure_started()
    child = host.children[0]
    number = child.to_child
    killed = threading.Event()  # set when a kill has returned, whichever thread called it
    kill = child.kill

    def kill_and_tell(reason: str, code: str = "killed") -> None:
        kill(reason, code)
        killed.set()

    child.kill = kill_and_tell  # type: ignore[method-assign]
    outcome = runner.submit("x.y", payload, 1.0 if killer == "deadline" else 30.0)
    # the runner's write is blocked: the pipe is full and the child reads nothing
    _wait(lambda: _queued(keep[0]) >= fcntl.fcntl(number, fcntl.F_GETPIPE_SZ), 10, "a full pipe")

    stopper = None
    if killer == "revoked":
        runner.kill_child("install disabled")
    elif killer == "stop":
        stopper = threading.Thread(target=runner.stop, args=("host stopping",))
        stopper.start()
    assert killed.wait(10), "no kill"
    # Another thread of the host opens files meanwhile (a store connection, another app's
    # pipes): each takes the lowest free number. Fill every one up to the channel's.
    victims: list[tuple[int, Path]] = []
    try:
        while not victims or victims[-1][0] < number:
            path = tmp_path / f"host-{len(victims)}.db"
            path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 4080)
            victims.append((os.open(path, os.O_RDWR), path))
        os.close(keep.pop())  # the child's channel is gone now: the blocked write wakes
        with pytest.raises(ChildDied):
            outcome.result(10)
        if stopper is not None:
            stopper.join(10)
            assert not stopper.is_alive()
    finally:
        for fd, _path in victims:
            os.close(fd)
        for fd in keep:
            os.close(fd)
    for _fd, path in victims:
        assert MARK.encode() not in path.read_bytes(), "the host wrote the app's frame into " \
            "a file it opened after the kill"
    assert number not in [fd for fd, _ in victims], "the channel's number was freed by the kill"


def test_kill_is_safe_twice_and_close_after_it_frees_everything(tmp_path: Path) -> None:
    child = start_fake_child([["hello"], ["sleep", 60]])
    child.handshake("tok", lambda _t: None, degraded=False)
    fds = (child.to_child, child.from_child, child.err_fd)
    child.kill("first")
    child.kill("second")
    assert child.death == "first"
    for fd in fds:
        os.fstat(fd)  # still this child's: only its owner's close frees them
    child.close()
    child.close()
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
    child.kill("after close")  # nothing left to signal through: no error, no stray signal


# ---- 2. `sandbox exec` ends though the child filled its channel -----------------------------

def _reply_action(reply_bytes: int) -> str:
    """An action name whose refusal Reply (what `sandbox exec` answers) is `reply_bytes` long."""
    def size(action: str) -> int:
        message = f"{action}: this sandbox has no permissions (no app, no grants)"
        return len(encode(frames.encode(Reply(id=1000, ok=False, error=WireError(
            code="permission_denied", message=message)))))

    action = "a" + "b" * (reply_bytes - size("a"))
    assert size(action) == reply_bytes
    return action


def test_sandbox_exec_ends_though_the_child_filled_its_channel(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Replies of 256 bytes fill the pipe page for page, so not one byte of Shutdown fits.
    steps = [["hello"], ["event"], ["fill_with_replies", _reply_action(256), 256], ["done"],
             ["sleep", 60]]

    class _Spawner:
        def start(self, _limits: ChildLimits) -> Child:
            return start_fake_child(steps)

        def close(self) -> None:
            pass

    monkeypatch.setattr(sandbox_exec, "Spawner", lambda use_zygote=True: _Spawner())
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.update(result=sandbox_exec.run_snippet(
        "x = 1", timeout=2.0, write=lambda _s: None)), daemon=True)
    start = time.monotonic()
    t.start()
    t.join(10)
    assert not t.is_alive(), "run_snippet still blocked (writing Shutdown to a full channel)"
    assert box["result"].exit_code == 0
    assert time.monotonic() - start < 2.0 + 5.0


# ---- 3. log output is capped per event and per load, on the host ---------------------------

# One Log frame of line breaks `str.splitlines` counts (the host stamps each line it writes),
# and one of long lines: the first passes the line cap, the second the character cap. As
# `["logs", frames, text, times]` steps of the fake child (each frame is text * times). Twenty
# frames (1.3 M characters) pass the caps without passing `logcap.LOG_FLOOD_CHARS`, past which
# the child is killed instead (`test_protocol_attacks.py`).
BREAKS = ["\r", 65_536]
LONG_LINES = ["y" * 1023 + "\n", 64]


def test_a_log_flood_is_cut_per_event_and_noted_once(
        hosts: list[tuple[FakeHost, AppRunner]], tmp_path: Path) -> None:
    steps = [["hello"],
             ["event"], ["logs", 20, *BREAKS], ["done"],
             ["event"], ["logs", 20, *LONG_LINES], ["done"],
             ["event"], ["logs", 1, "still heard\n", 1], ["done"], ["sleep", 60]]
    host, runner = _runner(hosts, steps, tmp_path)
    per_event: list[list[str]] = []
    for _ in range(3):
        before = len(host.logged)
        runner.submit("x.y", {}, 30.0).result(30)
        per_event.append(host.logged[before:])
    for texts in per_event[:2]:
        notes = [t for t in texts if t.startswith("[stockade]")]
        kept = [t for t in texts if not t.startswith("[stockade]")]
        assert len(notes) == 1 and "dropped" in notes[0], notes
        assert sum(len(t.splitlines()) for t in kept) <= MAX_LOG_LINES_PER_EVENT
        assert sum(len(t) for t in kept) <= MAX_LOG_CHARS_PER_EVENT
    assert per_event[2] == ["still heard\n"]  # each event has a budget of its own
    assert runner.status()["logs_cut"] == 2
    assert MAX_LOG_CHARS_PER_EVENT >= PRINT_TOTAL_CAP  # an app in the runtime never meets it
    written = sum(p.stat().st_size for p in tmp_path.glob("inst-1.log*"))
    assert written < 3 * MAX_LOG_CHARS_PER_EVENT


def test_a_log_flood_while_loading_is_cut_and_noted_once() -> None:
    child = start_fake_child([["hello"], ["recv"], ["logs", 20, *BREAKS],
                              ["send", {"t": "loaded", "ok": True, "handlers": []}],
                              ["sleep", 60]])
    try:
        child.handshake("tok", lambda _t: None, degraded=False)
        logged: list[str] = []
        child.load("hostile", {"m": ""}, "m", "A", {}, lambda text, _t: logged.append(text))
        notes = [t for t in logged if t.startswith("[stockade]")]
        assert len(notes) == 1 and "dropped" in notes[0], notes
        assert sum(len(t.splitlines()) for t in logged) <= MAX_LOG_LINES_PER_EVENT + 1
        assert child.logs_cut == 1
    finally:
        with contextlib.suppress(OSError):
            child.kill("test over")
            child.close()
