"""`FrameReader.try_read`: what the event pump reads with, never waiting on a peer."""
from __future__ import annotations

import os

import pytest

from sandbox.wire import ChannelClosed, FrameError, FrameReader, encode


def _pipe() -> tuple[FrameReader, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    return FrameReader(r, spin=True), w


def test_half_a_frame_returns_none_and_the_rest_completes_it() -> None:
    reader, w = _pipe()
    frame = encode(b'{"t":"done","id":1,"ok":true}')
    assert reader.try_read() is None  # nothing yet: no wait
    os.write(w, frame[:7])
    assert reader.try_read() is None  # half a frame: still no wait
    os.write(w, frame[7:] + encode(b"second"))
    assert reader.try_read() == b'{"t":"done","id":1,"ok":true}'
    assert reader.try_read() == b"second"  # already buffered: no read needed
    assert reader.try_read() is None
    os.close(w)
    with pytest.raises(ChannelClosed):
        reader.try_read()


def test_a_peer_that_closes_mid_frame_is_a_frame_error() -> None:
    reader, w = _pipe()
    os.write(w, encode(b"0123456789")[:8])
    assert reader.try_read() is None
    os.close(w)
    with pytest.raises(FrameError):
        reader.try_read()


def test_an_oversize_length_is_refused_before_the_body_arrives() -> None:
    reader, w = _pipe()
    os.write(w, (reader.max_frame + 1).to_bytes(4, "big"))
    with pytest.raises(FrameError):
        reader.try_read()
    os.close(w)
