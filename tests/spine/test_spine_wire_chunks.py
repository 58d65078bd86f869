"""`FrameReader.read` and `try_read` return exactly the frames written, whatever the chunking.

Both have a short path for "nothing buffered and one read brings one whole frame"; this holds
them to the buffered path's answers for frames split, joined and cut at random points.
"""
from __future__ import annotations

import itertools
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.wire import ChannelClosed, FrameError, FrameReader, encode

bodies = st.lists(st.binary(max_size=300), max_size=8)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@settings(max_examples=150, deadline=None)
@given(bodies, st.lists(st.integers(min_value=0, max_value=4000), max_size=10),
       st.integers(min_value=0, max_value=11))
def test_reads_return_the_frames_in_order(frames: list[bytes], cuts: list[int], trunc: int) -> None:
    data = b"".join(encode(b) for b in frames)
    tail = encode(b"x" * 8)[:trunc]  # a frame cut short at the end (none when trunc is 0)
    for use_try in (False, True):
        r, w = os.pipe()
        try:
            reader = FrameReader(r, spin=use_try)
            got: list[bytes] = []
            for chunk in _chunks(data + tail, cuts):
                os.write(w, chunk)
                if use_try:
                    while (frame := reader.try_read()) is not None:
                        got.append(frame)
            os.close(w)
            w = -1
            end: type[Exception] | None = None
            try:
                while True:
                    got.append(reader.read())
            except (ChannelClosed, FrameError) as exc:
                end = type(exc)
            assert got == frames
            assert end is (FrameError if tail else ChannelClosed)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
