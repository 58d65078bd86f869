"""Shared helpers for the security suite: run snippets the way `stockade sandbox exec` does.

`run_snippet` (host/supervise/sandbox_exec.py) starts a fresh zygote per call (~0.1-0.3 s). The escape
suite runs ~100 snippets, so `ExecHarness` runs them through the *real* `run_snippet` but with
its `Spawner` swapped for one shared zygote: every snippet still gets its own freshly forked,
fully confined child, its own token and handshake, and run_snippet's own exit-code logic.
"""
from __future__ import annotations

import gc
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import host.supervise.sandbox_exec as sandbox_exec
from host.supervise.child import Child, ChildLimits
from host.supervise.spawner import Spawner

REPO = Path(__file__).resolve().parents[2]
STOCKADE = Path(sys.executable).parent / "stockade"
MARKER = "ESCAPED"


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    message: str

    @property
    def escaped(self) -> bool:
        return MARKER in self.stdout


class _SharedSpawner:
    """Stands in for `host.supervise.sandbox_exec.Spawner`: same `start`, but `close` keeps the zygote."""

    def __init__(self, real: Spawner) -> None:
        self._real = real

    def __call__(self, use_zygote: bool = True) -> _SharedSpawner:
        return self

    def start(self, limits: ChildLimits) -> Child:
        return self._real.start(limits)

    def close(self) -> None:
        pass


class ExecHarness:
    def __init__(self, spawner: Spawner) -> None:
        self.spawner = spawner

    def run(self, source: str, timeout: float = 5.0, memory_mib: int = 128) -> Outcome:
        out = io.StringIO()
        original: Any = sandbox_exec.Spawner
        sandbox_exec.Spawner = _SharedSpawner(self.spawner)  # type: ignore[misc,assignment]
        try:
            res = sandbox_exec.run_snippet(source, timeout=timeout, memory_mib=memory_mib,
                                           write=out.write)
        finally:
            sandbox_exec.Spawner = original  # type: ignore[misc]
        return Outcome(res.exit_code, out.getvalue(), res.message)


def cli_exec(source: str, tmp_path: Path, *args: str, timeout: float = 60.0) -> Outcome:
    """Run `stockade sandbox exec FILE ARGS...` as a real subprocess (the reviewers' tool)."""
    path = tmp_path / "snippet.py"
    path.write_text(source)
    proc = subprocess.run(
        [str(STOCKADE), "sandbox", "exec", str(path), *args],
        capture_output=True, text=True, timeout=timeout, cwd=str(tmp_path),
        env={**os.environ, "STOCKADE_HOME": str(tmp_path / "home")},
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


# ---- a fake child that speaks the protocol badly -------------------------------------------

# Runs as `python -c FAKE_CHILD IN OUT STEPS_JSON`. Steps: ["recv"] read one frame; ["hello"]
# read HostHello and answer a correct ChildHello (all layers on) echoing the token;
# ["hello", {"seccomp": False}] the same with those layers reported as given; ["send", obj]
# one well-framed JSON frame; ["raw", hex] raw bytes; ["sleep", s]; ["exit", code];
# ["stderr", text] write `text` to stderr (what the host keeps of a dead child's crash text);
# ["flood_calls", n] n Call frames, each followed by reading the Reply; ["event"] read an Event
# and remember its id; ["done_with_reply"] read a Reply and finish that event with it as result;
# ["done"] finish that event (result None); ["done_id"] finish it with its id as the result; ["logs", n, text, k] n Log frames of `text` * k;
# ["fill_with_replies", action, reply_bytes] as many Calls (never reading their Replies) as make
# Replies of `reply_bytes` fill the host-to-child pipe exactly; ["wide", "done" | "call", n] that
# event's Done (or a Call) whose result (args) holds n empty lists; ["done_result", json_text]
# that event's Done with `json_text` as its result, written as given (NaN too).
FAKE_CHILD = r"""
import json, os, struct, sys, time
IN, OUT = int(sys.argv[1]), int(sys.argv[2])
steps = json.loads(sys.argv[3])
buf = b""
def recv():
    global buf
    while len(buf) < 4:
        c = os.read(IN, 65536)
        if not c: sys.exit(0)
        buf += c
    n = struct.unpack(">I", buf[:4])[0]
    while len(buf) < 4 + n:
        c = os.read(IN, 65536)
        if not c: sys.exit(0)
        buf += c
    body, buf = buf[4:4 + n], buf[4 + n:]
    return json.loads(body)
def raw(b):
    while b:
        b = b[os.write(OUT, b):]
def send(obj):
    body = json.dumps(obj).encode()
    raw(struct.pack(">I", len(body)) + body)
LAYERS = dict(seccomp=True, landlock=True, no_new_privs=True, netns=True, ipcns=True, pidns=True, rlimits=True,
              pdeathsig=True, fds_closed=True, empty_env=True, uid_dropped=True, empty_root=True,
              notes=[])
for step in steps:
    op = step[0]
    if op == "recv": recv()
    elif op == "hello":
        h = recv(); send({"t": "hello", "v": 1, "token": h["token"],
                          "layers": {**LAYERS, **(step[1] if len(step) > 1 else {})}})
    elif op == "send": send(step[1])
    elif op == "raw": raw(bytes.fromhex(step[1]))
    elif op == "sleep": time.sleep(step[1])
    elif op == "exit": os._exit(step[1])
    elif op == "stderr": os.write(2, step[1].encode())
    elif op == "event": event_id = recv()["id"]
    elif op == "done_with_reply":
        send({"t": "done", "id": event_id, "ok": True, "result": recv()})
    elif op == "flood_calls":
        for i in range(step[1]):
            send({"t": "call", "id": i + 1, "action": "users.get", "args": {"user_id": "u"}})
            recv()
    elif op == "done": send({"t": "done", "id": event_id, "ok": True})
    elif op == "done_id": send({"t": "done", "id": event_id, "ok": True, "result": event_id})
    elif op == "logs":
        for _ in range(step[1]):
            send({"t": "log", "text": step[2] * step[3]})
    elif op == "wide":
        lists = b"[" + b",".join([b"[]"] * step[2]) + b"]"
        raw_frame = (b'{"t":"done","id":%d,"ok":true,"result":%s}' % (event_id, lists)
                     if step[1] == "done" else
                     b'{"t":"call","id":1,"action":"users.get","args":{"a":%s}}' % lists)
        raw(struct.pack(">I", len(raw_frame)) + raw_frame)
    elif op == "done_result":
        raw_frame = b'{"t":"done","id":%d,"ok":true,"result":%s}' % (event_id, step[1].encode())
        raw(struct.pack(">I", len(raw_frame)) + raw_frame)
    elif op == "fill_with_replies":
        import fcntl
        for i in range(fcntl.fcntl(IN, fcntl.F_GETPIPE_SZ) // step[2]):
            send({"t": "call", "id": 1000 + i, "action": step[1], "args": {}})
time.sleep(60)
"""


def start_fake_child(steps: list[Any], keep_reader: list[int] | None = None) -> Child:
    """A host `Child` wired to a fake child process that follows `steps`.

    `keep_reader`: the test keeps a copy of the child's reading end there (appended), so the
    host's channel stays open, and full, after the child died, until the test closes it."""
    import json
    import threading

    h2c_r, h2c_w = os.pipe2(os.O_CLOEXEC)
    c2h_r, c2h_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    popen = subprocess.Popen(
        [sys.executable, "-I", "-c", FAKE_CHILD, str(h2c_r), str(c2h_w), json.dumps(steps)],
        pass_fds=(h2c_r, c2h_w), stderr=err_w, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, env={},
    )
    if keep_reader is not None:
        keep_reader.append(os.dup(h2c_r))
    for fd in (h2c_r, c2h_w, err_w):
        os.close(fd)
    child = Child(pid=popen.pid, session_id="s" * 32, to_child=h2c_w, from_child=c2h_r,
                  err_fd=err_r, popen=popen)

    def wait() -> None:
        rc = popen.wait()
        child.exited((-rc) & 0x7F if rc < 0 else (rc & 0xFF) << 8)

    threading.Thread(target=wait, daemon=True).start()
    return child


@pytest.fixture(name="fakes")
def fakes_fixture() -> Iterator[list[Child]]:
    """The fake children a test starts (`fake`), each killed and closed when it ends."""
    made: list[Child] = []
    yield made
    for child in made:
        child.kill("test over")
        child.close()


def fake(fakes: list[Child], steps: list[Any]) -> Child:
    """`start_fake_child(steps)`, killed and closed at the test's end (the `fakes` fixture)."""
    child = start_fake_child(steps)
    fakes.append(child)
    return child


def settle_heap() -> None:
    """In a test's fork, before it confines itself: collect the test process's garbage while
    every system call is still allowed, then freeze what is left, so no finalizer of an earlier
    test's object (a subprocess, a socket, a browser driver) runs under the filter and meets an
    unlisted call (SIGSYS). The zygote does the same before it forks (`sandbox.zygote`).

    Also forget the test process's unreaped subprocesses: `subprocess` keeps them in `_active`
    and reaps them (wait4) at the next Popen, which the fork's own attack makes under the filter
    (a CI run was killed by SIGSYS on wait4 this way). They are not this fork's children."""
    active = getattr(subprocess, "_active", None)
    if isinstance(active, list):
        active.clear()
    gc.collect()
    gc.freeze()
