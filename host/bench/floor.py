"""The physical floor: two processes exchanging small frames over pipes, nothing else.

The parent forks a child that echoes every frame it reads; both ends use the same framing as
the real channel (`sandbox.wire`: a 4-byte big-endian length, then the body) and blocking
descriptors. No gate, no server, no JSON parsing, no pydantic: what is left is two pipe writes,
two reads and two wake-ups, which is what every bridge call pays at least.

Where the two processes run decides that cost more than anything else: on one core a round trip
is two process switches; on two cores it is two cross-core wake-ups, which on a VM can cost ten
times more (2026-12-05: 3.8 µs against 64 µs here). The scheduler picks either, run to run,
while the host places a calling app's pair itself (`host.supervise.affinity`), so a floor left
to the scheduler could be the dear placement while the calls it judges ran the cheap way. So the
floor is measured in both placements, each pinned, and the bench judges against the lower.
"""
from __future__ import annotations

import contextlib
import os
import time

from sandbox.wire import ChannelClosed, FrameReader, encode, write_all

# About the size of a `users.get` call frame, so the copy cost matches too.
FRAME_BODY = b'{"t":"call","id":1,"action":"users.get","args":{"user_id":"u_0123456789abcdef"}}'


def _echo(read_fd: int, write_fd: int) -> None:
    reader = FrameReader(read_fd)
    while True:
        try:
            body = reader.read()
        except ChannelClosed:
            return
        write_all(write_fd, encode(body))


def placements() -> dict[str, tuple[int, int]]:
    """The CPUs (parent, child) for each placement this process may use: `one_core` always,
    `two_cores` when it may run on at least two."""
    cpus = sorted(os.sched_getaffinity(0))
    out = {"one_core": (cpus[0], cpus[0])}
    if len(cpus) > 1:
        out["two_cores"] = (cpus[0], cpus[1])
    return out


def measure_floor_placed(iterations: int, warmup: int) -> dict[str, list[float]]:
    """`measure_floor` in each of `placements()`, both ends pinned; the caller's CPUs restored."""
    own = os.sched_getaffinity(0)
    try:
        return {name: measure_floor(iterations, warmup, cpus)
                for name, cpus in placements().items()}
    finally:
        os.sched_setaffinity(0, own)


def measure_floor(iterations: int, warmup: int,
                  cpus: tuple[int, int] | None = None) -> list[float]:
    """Round-trip times in microseconds (after `warmup` unrecorded round trips); with `cpus`,
    this thread runs on the first and the echo child on the second (the thread stays there)."""
    p2c_r, p2c_w = os.pipe()
    c2p_r, c2p_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the echo child: no Python-level cleanup, no atexit handlers
        code = 0
        try:
            if cpus is not None:
                os.sched_setaffinity(0, {cpus[1]})
            os.close(p2c_w)
            os.close(c2p_r)
            _echo(p2c_r, c2p_w)
        except BaseException:  # noqa: BLE001 - a forked child must never return into the caller
            code = 1
        os._exit(code)
    os.close(p2c_r)
    os.close(c2p_w)
    if cpus is not None:
        os.sched_setaffinity(0, {cpus[0]})
    reader = FrameReader(c2p_r)
    frame = encode(FRAME_BODY)
    samples: list[float] = []
    clock = time.perf_counter_ns
    try:
        for i in range(warmup + iterations):
            t0 = clock()
            write_all(p2c_w, frame)
            reader.read()
            dt = clock() - t0
            if i >= warmup:
                samples.append(dt / 1000.0)
    finally:
        os.close(p2c_w)
        os.close(c2p_r)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return samples
