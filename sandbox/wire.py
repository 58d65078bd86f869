"""Length-prefixed frames on dedicated pipe descriptors.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. The channel
uses its own descriptors, never stdout, so a stray print cannot corrupt the protocol. A reader
refuses a length above `MAX_FRAME_BYTES` before allocating anything.

Waiting for a frame can *spin* before it blocks (`FrameReader.read(spin_ns=...)`): when the
answer is expected within microseconds (a Reply to a bridge call, the next Call of a handler
that is running), polling the non-blocking descriptor for a bounded time avoids the scheduler's
sleep/wake-up, which costs ~45-90 µs when the two processes sit on different cores, far more
than everything else a small bridge call does. The budget is bounded, so a slow peer costs at
most `spin_ns` of this process's CPU before it sleeps in `poll` as a plain blocking read would.
Whether a wait spins at all is `SpinPolicy`'s call: spinning only pays when a spare core runs
the peer while this process polls.
"""
from __future__ import annotations

import os
import select
import struct
import time
from collections.abc import Callable

from sandbox.wirecaps import MAX_FRAME_BYTES

_HEADER = struct.Struct(">I")
_READ_CHUNK = 1 << 16


# Spinning needs a core for the spinner and one for the peer it waits on, plus the host's other
# work: on two cores or fewer a spinning reader takes the CPU the gate needs to answer it
# (issue 27 measured read p50 513-1,818 µs with spinning against 446-477 µs without on two
# cores; docs/BENCH.md has the A/B). Read once at import, before any sandbox narrows the view.
SPIN_MIN_CPUS = 3
_CPUS = len(os.sched_getaffinity(0))
# The adaptive part (`SpinPolicy`): a moving rate of waits whose frame arrived inside the spin
# budget. Below SPIN_MIN_RATE spinning stops; one wait in SPIN_PROBE_EVERY then spins anyway,
# so a peer that speeds up again (load went away) turns spinning back on.
SPIN_RATE_WEIGHT = 1 / 16  # each outcome's weight in the moving rate (about the last 16 waits)
SPIN_MIN_RATE = 0.5
SPIN_PROBE_EVERY = 32


class SpinPolicy:
    """How long one channel's next wait spins: its budget, or 0 when spinning does not pay.

    Off for good on a machine with fewer than SPIN_MIN_CPUS cores. Otherwise `budget()` before
    a wait and `record(caught)` after it keep a moving rate of spins that caught their frame;
    a spin that runs out has burned its whole budget for nothing, so a rate under
    SPIN_MIN_RATE turns spinning off, and a probe spin now and then can turn it back on.
    Deterministic: the same outcomes give the same decisions.
    """

    def __init__(self, budget_ns: int, cpus: int | None = None) -> None:
        self.budget_ns = budget_ns
        self.usable = (_CPUS if cpus is None else cpus) >= SPIN_MIN_CPUS
        self.rate = 1.0  # optimistic start: the first waits spin and measure
        self._skipped = 0

    @property
    def spinning(self) -> bool:
        return self.usable and self.rate >= SPIN_MIN_RATE

    def budget(self) -> int:
        """The spin budget (ns) for the next wait; 0 means sleep at once."""
        if not self.usable:
            return 0
        if self.rate >= SPIN_MIN_RATE:
            return self.budget_ns
        self._skipped += 1
        if self._skipped >= SPIN_PROBE_EVERY:
            self._skipped = 0
            return self.budget_ns
        return 0

    def record(self, caught: bool) -> None:
        """A wait that spun: did its frame arrive before the budget ran out?"""
        self.rate += SPIN_RATE_WEIGHT * ((1.0 if caught else 0.0) - self.rate)


class ChannelClosed(Exception):
    """The other end closed the channel (or died)."""


class FrameError(Exception):
    """The peer sent something that is not a valid frame; the channel must be dropped."""


def encode(body: bytes) -> bytes:
    if len(body) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME_BYTES}-byte cap")
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Reads whole frames from a descriptor with as few syscalls as it can.

    With `spin=True` the reader sets its descriptor non-blocking (the descriptor must be its
    own: a pipe end no other code reads) and sleeps in `poll` once its spin budget is spent;
    otherwise every read is a plain blocking `read`.
    """

    def __init__(self, fd: int, max_frame: int = MAX_FRAME_BYTES, *, spin: bool = False) -> None:
        self.fd = fd
        self.max_frame = max_frame
        self._buf = bytearray()
        # False once a read's spin budget ran out and it slept (for `SpinPolicy.record`).
        self.caught = True
        self._poll: select.poll | None = None
        # (ms, what to do): a read that sleeps waits at most that long for the peer, then
        # does it, once (the patience is then spent), and sleeps on. Spin readers only; the
        # host's, while a child is pinned beside its threads (`host.supervise.burst`).
        self.patience: tuple[int, Callable[[], None]] | None = None
        # With `patience`: the time (`time.monotonic_ns`) by which it is spent even though
        # frames keep arriving within its wait; 0: no such time. Frames that renew nothing (an
        # escaped child's empty Log frames every millisecond) cannot keep it unspent.
        self.patience_by = 0
        if spin:
            os.set_blocking(fd, False)
            self._poll = select.poll()
            self._poll.register(fd, select.POLLIN)

    def _chunk(self, spin_until: int) -> bytes:
        """One read's worth of bytes (never empty); raises ChannelClosed at EOF."""
        if self._poll is None:
            chunk = os.read(self.fd, _READ_CHUNK)
        else:
            chunk = self._spin_read(self.fd, self._poll, spin_until)
        if not chunk:
            raise ChannelClosed("peer closed the channel")
        return chunk

    def _fill(self, spin_until: int) -> None:
        self._buf += self._chunk(spin_until)

    def _whole(self, chunk: bytes) -> bytes | None:
        """The body of `chunk` if it is exactly one whole frame within the cap, else None."""
        if len(chunk) >= 4:
            (length,) = _HEADER.unpack_from(chunk)
            if len(chunk) == 4 + length and length <= self.max_frame:
                return chunk[4:]
        return None

    def _spin_read(self, fd: int, poll: select.poll, spin_until: int) -> bytes:
        if not spin_until:
            # No spin budget: the peer is not expected to answer within microseconds (an idle
            # child waiting for its next event), so sleep first. Trying the read first would
            # cost a failed syscall and a BlockingIOError (with its strerror text) per frame.
            self._sleep(poll)
        while True:
            try:
                return os.read(fd, _READ_CHUNK)
            except BlockingIOError:
                if spin_until and time.monotonic_ns() < spin_until:
                    continue
                if spin_until:
                    self.caught = False
                spin_until = 0
                # Sleep until readable (or hung up: the read then returns b"").
                self._sleep(poll)

    def _sleep(self, poll: select.poll) -> None:
        patience = self.patience
        if patience is not None:
            by = self.patience_by
            if (not by or time.monotonic_ns() < by) and poll.poll(patience[0]):
                return
            self.patience = None
            patience[1]()
        poll.poll()

    def read(self, spin_ns: int = 0) -> bytes:
        """Return the next frame body; raise ChannelClosed at EOF, FrameError on bad framing.

        `spin_ns` > 0: poll for up to that long before sleeping (see the module docstring).
        """
        spin_until = time.monotonic_ns() + spin_ns if spin_ns > 0 else 0
        self.caught = True
        if not self._buf:
            # The usual case: nothing buffered, and one read brings exactly one whole frame.
            # Its body is returned without passing through the buffer.
            chunk = self._chunk(spin_until)
            body = self._whole(chunk)
            if body is not None:
                return body
            self._buf += chunk
        while True:
            frame = self._take()
            if frame is not None:
                return frame
            try:
                self._fill(spin_until)
            except ChannelClosed as exc:
                if self._buf:
                    raise FrameError("truncated frame") from exc
                raise

    def try_read(self) -> bytes | None:
        """The next frame if it has fully arrived, else None; never waits (spin readers only).

        One read of what is there: a peer that sends half a frame and stops makes this return
        None, not block, so one reader thread can serve many peers.
        """
        buffered = bool(self._buf)
        if buffered:
            frame = self._take()
            if frame is not None:
                return frame
        try:
            chunk = os.read(self.fd, _READ_CHUNK)
        except BlockingIOError:
            return None
        if not chunk:
            if buffered:
                raise FrameError("truncated frame")
            raise ChannelClosed("peer closed the channel")
        if not buffered:
            body = self._whole(chunk)  # the same short path as `read`
            if body is not None:
                return body
        self._buf += chunk
        return self._take()

    def _take(self) -> bytes | None:
        buf = self._buf
        if len(buf) < 4:
            return None
        (length,) = _HEADER.unpack_from(buf)
        if length > self.max_frame:
            raise FrameError(f"declared frame length {length} exceeds the cap {self.max_frame}")
        if len(buf) < 4 + length:
            return None
        body = bytes(buf[4 : 4 + length])
        del buf[: 4 + length]
        return body


def write_all(fd: int, data: bytes) -> None:
    """Write every byte (pipes may accept partial writes for large frames).

    Works on a non-blocking descriptor too: it then waits in `poll` for room, with no deadline
    of its own: a peer that stops reading holds it until the peer dies (the host's watchdog
    kills it) and the write fails. No other thread may close `fd` meanwhile: the number would
    be free for the next file opened, and the rest of `data` would go there.
    """
    try:
        n = os.write(fd, data)
    except BlockingIOError:
        n = 0
    if n == len(data):
        return  # the usual case: a frame that fits the pipe goes out in one write
    view = memoryview(data)[n:]
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            waiter = select.poll()
            waiter.register(fd, select.POLLOUT)
            waiter.poll()
            continue
        view = view[n:]


def try_write(fd: int, frame: bytes) -> bool:
    """Write a whole frame of at most `PIPE_BUF` bytes without waiting; False when no room.

    Such a write is atomic on a pipe: all of it lands, or none (EAGAIN).
    """
    if len(frame) > select.PIPE_BUF:
        raise ValueError(f"try_write: {len(frame)} bytes is more than one atomic pipe write")
    try:
        return os.write(fd, frame) == len(frame)
    except BlockingIOError:
        return False
