"""What keeps an app child's private memory small (`stockade bench`, idle_app_private_mib).

The figure itself is a benchmark, not asserted here; these tests hold the mechanisms:

- `sandbox.heapfill`: the zygote fills pymalloc's holes so a child allocates on fresh pages.
  The allocator's per-class counts are read on this interpreter, and after a fill no size
  class has more room left than the tail of one pool (holes spread over many pools are what
  make a forked child copy page after page).
- the handler name a child looks up for each event is one string object per event name, not
  a new one per event (CPython's attribute cache keeps every distinct name object alive).
"""
from __future__ import annotations

import sys

import pytest

from sandbox import heapfill
from sandbox.api import handler_name

# pymalloc's pool size on 64-bit CPython 3.10+: the room one partly used pool can hold.
POOL_BYTES = 16 * 1024


def test_the_allocator_counts_are_read_on_this_interpreter() -> None:
    avail = heapfill.available_blocks()
    assert avail, "sys._debugmallocstats printed nothing parseable"
    assert set(avail) <= set(range(16, 513, 16))
    assert all(n >= 0 for n in avail.values())


def test_after_a_fill_no_size_class_has_holes_in_more_than_one_pool() -> None:
    # Make thousands of 64-byte holes across many pools: keep every second object.
    made = [b"\0" * (64 - sys.getsizeof(b"")) for _ in range(20_000)]
    kept = made[::2]
    del made
    before = heapfill.available_blocks()
    assert before[64] > 4 * POOL_BYTES // 64  # the holes are there to fill
    ballast = heapfill.fill()
    after = heapfill.available_blocks()
    crowded = {size: n for size, n in after.items() if n >= POOL_BYTES // size}
    assert crowded == {}, crowded
    assert len(ballast) >= before[64] // 2
    del kept, ballast


def test_an_interpreter_without_the_counts_fills_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(sys, "_debugmallocstats")
    assert heapfill.available_blocks() == {}
    assert heapfill.fill() == []


def test_each_event_name_maps_to_one_handler_name_object() -> None:
    # built from pieces, as a decoded frame's name would be: not the same object each time
    first = handler_name("livechat." + "room_started")
    again = handler_name("livechat." + "room_started")
    assert first == "on_livechat_room_started"
    assert first is again
