"""The physical floor: two processes exchanging small frames over pipes, nothing else.

The parent forks a child that echoes every frame it reads; both ends use the same framing as
the real channel (`sandbox.wire`: a 4-byte big-endian length, then the body) and blocking
descriptors. No gate, no server, no JSON parsing, no pydantic: what is left is two pipe writes,
two reads and two wake-ups, which is what every bridge call pays at least.
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


def measure_floor(iterations: int, warmup: int) -> list[float]:
    """Round-trip times in microseconds (after `warmup` unrecorded round trips)."""
    p2c_r, p2c_w = os.pipe()
    c2p_r, c2p_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the echo child: no Python-level cleanup, no atexit handlers
        code = 0
        try:
            os.close(p2c_w)
            os.close(c2p_r)
            _echo(p2c_r, c2p_w)
        except BaseException:  # noqa: BLE001 - a forked child must never return into the caller
            code = 1
        os._exit(code)
    os.close(p2c_r)
    os.close(c2p_w)
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
