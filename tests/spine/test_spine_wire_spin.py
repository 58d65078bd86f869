"""The channel's spin-then-sleep read (`sandbox.wire.FrameReader(spin=True)`).

Both ends of a real channel read this way (the child for its Reply, the host for a running
handler's next frame). What must hold: frames come through whole whether they land during the
spin or after it, a close is seen in either phase, and the spin is bounded: a reader whose peer
is slow sleeps instead of burning a core for as long as it waits.
"""
from __future__ import annotations

import os
import resource
import threading
import time

import pytest

from sandbox.wire import ChannelClosed, FrameError, FrameReader, encode, write_all


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    return r, w


def _later(delay_s: float, action: object) -> threading.Thread:
    def run() -> None:
        time.sleep(delay_s)
        action()  # type: ignore[operator]

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_frames_already_there_are_read_during_the_spin() -> None:
    r, w = _pipe()
    reader = FrameReader(r, spin=True)
    write_all(w, encode(b'{"a":1}') + encode(b"[2]"))
    assert reader.read(spin_ns=1_000_000) == b'{"a":1}'
    assert reader.read(spin_ns=1_000_000) == b"[2]"
    os.close(w)
    with pytest.raises(ChannelClosed):
        reader.read(spin_ns=1_000_000)
    os.close(r)


def test_a_frame_after_the_spin_budget_still_arrives() -> None:
    r, w = _pipe()
    reader = FrameReader(r, spin=True)
    t = _later(0.05, lambda: write_all(w, encode(b"late")))
    assert reader.read(spin_ns=100_000) == b"late"  # spun 0.1 ms, then slept in poll
    t.join()
    os.close(w)
    os.close(r)


def test_a_frame_split_across_writes_is_reassembled() -> None:
    r, w = _pipe()
    reader = FrameReader(r, spin=True)
    frame = encode(b'{"t":"call","id":1}')
    write_all(w, frame[:3])
    t = _later(0.02, lambda: write_all(w, frame[3:]))
    assert reader.read(spin_ns=10_000) == b'{"t":"call","id":1}'
    t.join()
    os.close(w)
    os.close(r)


def test_a_close_while_sleeping_is_seen() -> None:
    r, w = _pipe()
    reader = FrameReader(r, spin=True)
    t = _later(0.05, lambda: os.close(w))
    with pytest.raises(ChannelClosed):
        reader.read(spin_ns=10_000)
    t.join()
    os.close(r)


def test_a_close_inside_a_frame_is_a_frame_error() -> None:
    r, w = _pipe()
    reader = FrameReader(r, spin=True)
    write_all(w, encode(b"0123456789")[:8])
    t = _later(0.02, lambda: os.close(w))
    with pytest.raises(FrameError):
        reader.read(spin_ns=10_000)
    t.join()
    os.close(r)


def test_the_spin_is_bounded_a_slow_peer_costs_no_cpu() -> None:
    """Waiting 0.4 s for a frame with a 1 ms spin budget must sleep, not poll, for the rest.

    Measured in CPU time of the reading thread, against wall time: a reader that kept polling
    would use about as much CPU as it waited.
    """
    r, w = _pipe()
    reader = FrameReader(r, spin=True)
    t = _later(0.4, lambda: write_all(w, encode(b"slow")))
    cpu0 = resource.getrusage(resource.RUSAGE_THREAD)
    wall0 = time.monotonic()
    assert reader.read(spin_ns=1_000_000) == b"slow"
    wall = time.monotonic() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_THREAD)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    t.join()
    os.close(w)
    os.close(r)
    assert wall >= 0.35
    assert cpu < wall / 4, f"the reader used {cpu:.3f}s of CPU while waiting {wall:.3f}s"


def test_without_spin_the_descriptor_stays_blocking() -> None:
    """The plain reader (the bench's floor uses it) does not touch the descriptor's mode."""
    r, w = _pipe()
    FrameReader(r)
    assert os.get_blocking(r)
    FrameReader(r, spin=True)
    assert not os.get_blocking(r)
    os.close(w)
    os.close(r)
