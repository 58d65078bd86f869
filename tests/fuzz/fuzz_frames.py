"""Fuzz target: the frame decoder (`sandbox.wire.FrameReader`) and both frame adapters.

Input bytes are written to a real pipe and read back frame by frame, exactly as a host reads a
child (and a child reads the host). Documented outcomes only: `FrameError` / `ChannelClosed`
from the reader, `ValidationError` from the adapters, `ValueError` from `check_json_value`.
Invariants: a frame that validates re-serialises to JSON that validates to an equal frame; the
msgspec decoders of the hot path (`sandbox/frames.py`) accept exactly what the adapters accept.

Run for an hour: `.venv/bin/python tests/fuzz/fuzz_frames.py -max_total_time=3600` (docs/FUZZING.md).
"""
from __future__ import annotations

import os
import sys
from typing import Any

from pydantic import ValidationError

from sandbox import frames
from sandbox.protocol import CHILD_FRAME, HOST_FRAME
from sandbox.wire import ChannelClosed, FrameError, FrameReader
from sandbox.wirecaps import check_json_value

MAX_INPUT = 60_000  # below a pipe's buffer, so one write never blocks


def _check_frame(adapter: Any, body: bytes) -> None:
    fast = frames.decode_child if adapter is CHILD_FRAME else frames.decode_host
    try:
        fast(body)
        fast_ok = True
    except frames.FrameInvalid:
        fast_ok = False
    try:
        frame = adapter.validate_json(body)
    except ValidationError:
        assert not fast_ok, body[:200]
        return
    assert fast_ok, body[:200]
    for attr in ("args", "payload", "result", "settings"):
        if hasattr(frame, attr):
            try:
                check_json_value(getattr(frame, attr))
            except ValueError:
                pass
    again = adapter.validate_json(frame.model_dump_json())
    assert again == frame, (frame, again)


def fuzz_one(data: bytes) -> None:
    data = data[:MAX_INPUT]
    # the first byte picks a small frame cap sometimes, to exercise the oversize path cheaply
    max_frame = 64 if data[:1] == b"\x01" else 1 << 20
    r, w = os.pipe()
    try:
        os.write(w, data)
        os.close(w)
        w = -1
        reader = FrameReader(r, max_frame=max_frame)
        for _ in range(1000):
            try:
                body = reader.read()
            except (ChannelClosed, FrameError):
                break
            _check_frame(CHILD_FRAME, body)
            _check_frame(HOST_FRAME, body)
        # the raw input as one body, too (the adapters see whatever the framing delivers)
        _check_frame(CHILD_FRAME, data)
        _check_frame(HOST_FRAME, data)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


SEEDS: list[bytes] = [
    b'\x00\x00\x00\x28{"t":"done","id":1,"ok":true,"result":[1]}',
    b'\x00\x00\x00\x3b{"t":"call","id":2,"action":"users.get","args":{"user_id":"u"}}',
    b'\x00\x00\x00\x15{"t":"log","text":"hi"}',
    b'\x00\x00\x00\x26{"t":"hello","v":1,"token":"stk1.x.y"}',
]

if __name__ == "__main__":
    import atheris  # type: ignore[import-not-found]

    atheris.instrument_all()
    atheris.Setup(sys.argv, fuzz_one)
    atheris.Fuzz()
