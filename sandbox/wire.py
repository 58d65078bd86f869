"""Length-prefixed frames on dedicated pipe descriptors.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. The channel
uses its own descriptors, never stdout, so a stray print cannot corrupt the protocol. A reader
refuses a length above `MAX_FRAME_BYTES` before allocating anything.
"""
from __future__ import annotations

import os
import struct

from sandbox.protocol import MAX_FRAME_BYTES

_HEADER = struct.Struct(">I")
_READ_CHUNK = 1 << 16


class ChannelClosed(Exception):
    """The other end closed the channel (or died)."""


class FrameError(Exception):
    """The peer sent something that is not a valid frame; the channel must be dropped."""


def encode(body: bytes) -> bytes:
    if len(body) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME_BYTES}-byte cap")
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Reads whole frames from a blocking descriptor with as few syscalls as it can."""

    def __init__(self, fd: int, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.fd = fd
        self.max_frame = max_frame
        self._buf = bytearray()

    def _fill(self) -> None:
        chunk = os.read(self.fd, _READ_CHUNK)
        if not chunk:
            raise ChannelClosed("peer closed the channel")
        self._buf += chunk

    def read(self) -> bytes:
        """Return the next frame body; raise ChannelClosed at EOF, FrameError on bad framing."""
        buf = self._buf
        while len(buf) < 4:
            try:
                self._fill()
            except ChannelClosed as exc:
                if buf:
                    raise FrameError("truncated frame header") from exc
                raise
        (length,) = _HEADER.unpack_from(buf)
        if length > self.max_frame:
            raise FrameError(f"declared frame length {length} exceeds the cap {self.max_frame}")
        while len(buf) < 4 + length:
            try:
                self._fill()
            except ChannelClosed as exc:
                raise FrameError("truncated frame body") from exc
        body = bytes(buf[4 : 4 + length])
        del buf[: 4 + length]
        return body


def write_all(fd: int, data: bytes) -> None:
    """Write every byte (pipes may accept partial writes for large frames)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
