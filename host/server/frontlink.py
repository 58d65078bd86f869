"""The link between a host and its REST front (`host.server.front`): framed messages over one
end of a socketpair each.

Only the two processes hold the socketpair (the host made it and passed one end to the front it
started; nothing listens), so no other process can speak on it. A frame is a 4-byte big-endian
length and a JSON object. The front is the host's own code, but a frame is still bounded and
checked for shape: a broken front must fail one request, never the host.
"""
from __future__ import annotations

import socket
import struct
import threading
from typing import Any

import msgspec

# A frame's largest body. Guards the reader's memory: the largest legitimate frame is one
# write's events (a message with its room, 64 KiB of text at most: `limits.message_text`) or a
# message with its room for the pre-send hook.
MAX_FRAME_BYTES = 4 * 1024 * 1024
_HEAD = struct.Struct(">I")


class LinkBroken(Exception):
    """The other side closed the link, or sent what is not a frame."""


class Link:
    """One end of the socketpair: `send` from any thread, `recv` from one reader thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(True)
        self._send_lock = threading.Lock()
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder(dict[str, Any]).decode

    def send(self, message: dict[str, Any]) -> None:
        """Write one frame (whole: frames from several threads never interleave). Raises
        LinkBroken if the other side is gone."""
        body = self._encode(message)
        if len(body) > MAX_FRAME_BYTES:
            raise ValueError(f"a link frame of {len(body)} bytes is over {MAX_FRAME_BYTES}")
        try:
            with self._send_lock:
                self.sock.sendall(_HEAD.pack(len(body)) + body)
        except OSError as exc:
            raise LinkBroken(f"the link is closed ({exc})") from None

    def recv(self) -> dict[str, Any]:
        """The next frame. Raises LinkBroken at the other side's close or on a bad frame."""
        (size,) = _HEAD.unpack(self._read(_HEAD.size))
        if size > MAX_FRAME_BYTES:
            raise LinkBroken(f"a link frame of {size} bytes is over {MAX_FRAME_BYTES}")
        try:
            return self._decode(self._read(size))
        except msgspec.DecodeError as exc:
            raise LinkBroken(f"a link frame is not a JSON object ({exc})") from None

    def _read(self, n: int) -> bytes:
        chunks: list[bytes] = []
        while n:
            try:
                chunk = self.sock.recv(min(n, 1 << 20))
            except OSError as exc:
                raise LinkBroken(f"the link is closed ({exc})") from None
            if not chunk:
                raise LinkBroken("the other side closed the link")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def stop_sending(self) -> None:
        """Close this end for sending only: the other side's `recv` raises LinkBroken, and what
        it still sends is read here (a front told to stop forwards the events of the requests
        it finishes)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # already closed

    def close(self) -> None:
        """Close this end (the other side's `recv` then raises LinkBroken)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the other side
        self.sock.close()
