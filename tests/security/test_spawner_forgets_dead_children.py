"""A dead, closed child is forgotten by the spawner, in both ways it starts one (DESIGN rule 13).

The finding: with fresh interpreters (`serve --fresh-interpreters`, `Spawner(use_zygote=False)`)
the spawner's pid -> Child map was only emptied by the zygote's exit reports, so without a
zygote every child stayed there forever with its Popen and its frame buffer. An app that sends
most of a large frame and exits made each dead child hold ~1 MiB of host memory, and a restart
loop made that without bound.

The tests start, kill and close real children and check that nothing keeps them (a weak
reference to each dies once the caller lets go), and that a hostile child's half-sent frame is
freed with it.
"""
from __future__ import annotations

import gc
import json
import sys
import time
import types
import weakref
from pathlib import Path

import pytest

import host.supervise.spawner as spawner_mod
from host.supervise.child import ChildDied, ChildLimits
from host.supervise.spawner import Spawner
from host.supervise.watchdog import watchdog

N = 6
FORGET_WAIT_S = 10.0  # the exit is heard on a thread of its own (a Popen waiter, the zygote's)

# An escaped app child at the channel level: answers the hello, reads the Load, then sends a
# frame header declaring 1 MiB followed by 1 MiB - 1 bytes, and exits in the middle of the frame.
HALF_FRAME_CHILD = r"""
import json, os, struct, sys
IN, OUT = int(sys.argv[1]), int(sys.argv[2])
if len(sys.argv) > 3 and sys.argv[3]:  # the memory cgroup the host made it: joined, as a child does
    with open(sys.argv[3] + "/cgroup.procs", "w") as f:
        f.write("0")
buf = b""
def recv():
    global buf
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
        c = os.read(IN, 65536)
        if not c: os._exit(0)
        buf += c
    n = struct.unpack(">I", buf[:4])[0]; body, buf = buf[4:4 + n], buf[4 + n:]
    return json.loads(body)
def raw(b):
    while b: b = b[os.write(OUT, b):]
LAYERS = dict(seccomp=True, landlock=True, no_new_privs=True, netns=True, ipcns=True, pidns=True,
              rlimits=True, pdeathsig=True, fds_closed=True, empty_env=True, uid_dropped=True,
              empty_root=True, memory_cgroup=True, notes=[])
h = recv()
body = json.dumps({"t": "hello", "v": 1, "token": h["token"], "layers": LAYERS}).encode()
raw(struct.pack(">I", len(body)) + body)
recv()
raw(struct.pack(">I", 1 << 20) + b"A" * ((1 << 20) - 1))
os._exit(1)
"""


class _Nothing:
    """A `Timed` whose deadline passing kills nothing (see `_all_forgotten`)."""

    ticket = 0
    deadline_s = 0.0

    def kill(self, reason: str, *, code: str = "") -> None:
        pass


def _all_forgotten(refs: list[weakref.ref[object]]) -> list[int]:
    """Indexes of the children something still holds, after waiting for their exits.

    The watchdog keeps a finished event's (child, ticket) until a deadline of that length
    passes or the next one is armed (`host.supervise.watchdog`: bounded in time, its own
    design, not the spawner's); a deadline of 0 s wakes its thread, which drops them."""
    deadline = time.monotonic() + FORGET_WAIT_S
    while True:
        watchdog().arm(_Nothing(), 0.0, 0)
        gc.collect()
        held = [i for i, ref in enumerate(refs) if ref() is not None]
        if not held or time.monotonic() > deadline:
            return held
        time.sleep(0.05)


@pytest.mark.parametrize("use_zygote", [False, True], ids=["fresh interpreters", "zygote"])
def test_dead_closed_children_are_forgotten(use_zygote: bool) -> None:
    spawner = Spawner(use_zygote=use_zygote)
    try:
        refs: list[weakref.ref[object]] = []
        for _ in range(N):
            child = spawner.start(ChildLimits())
            refs.append(weakref.ref(child))
            child.kill("test", code="shutdown")
            child.close()
            del child
        held = _all_forgotten(refs)
        assert held == [], f"{len(held)} of {N} dead, closed children are still held"
    finally:
        spawner.close()


def test_a_dead_childs_half_frame_is_not_held(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Fresh interpreters, each a hostile child that dies in the middle of a 1 MiB frame."""
    fake = tmp_path / "half_frame.py"
    fake.write_text(HALF_FRAME_CHILD)
    # Stands in for `python -I -m sandbox.child IN OUT ... [CGROUP]` (the spawner's argv: $4,
    # $5 and, where the host makes memory cgroups, ${11})
    wrapper = tmp_path / "python"
    wrapper.write_text(
        f'#!/bin/sh\nexec {json.dumps(sys.executable)} -I {fake} "$4" "$5" "${{11}}"\n')
    wrapper.chmod(0o755)
    fake_sys = types.SimpleNamespace(executable=str(wrapper))
    monkeypatch.setattr(spawner_mod, "sys", fake_sys)  # only the spawner's view of sys
    spawner = Spawner(use_zygote=False)
    try:
        refs: list[weakref.ref[object]] = []
        deaths = []
        for _ in range(N):
            child = spawner.start(ChildLimits())
            refs.append(weakref.ref(child))
            try:
                child.handshake("tok", lambda _t: None, degraded=False)
                child.load("a", {"m": ""}, "m", "A", {}, lambda _t, _d: None)
            except ChildDied as exc:
                deaths.append(exc.reason)
            child.kill("test", code="shutdown")  # what the runner does with a dead child
            child.close()
            del child
        assert len(deaths) == N and all("truncated frame" in d for d in deaths), deaths
        held = _all_forgotten(refs)
        assert held == [], f"{len(held)} of {N} dead children (and their half frames) are held"
    finally:
        spawner.close()
