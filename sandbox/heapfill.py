"""Fill the small-object allocator's free blocks in the zygote before it forks.

Why: CPython's allocator for objects of at most 512 bytes (pymalloc) serves each size class
from the first of its pools that has a free block. After imports and warm-up the zygote's pools
are full of holes left by freed objects, a few per page, scattered over hundreds of pages. A
forked child's first allocations (compiling its app, decoding frames) would land in those
holes, a few bytes here and there, and every write copies the whole 4 KiB page from the
zygote. With the holes filled by objects the zygote keeps and never touches again, a child's
allocations come from fresh pools, packed side by side. Measured here: about 0.38 MiB less
private memory per app child after its first events (docs/BENCH.md), for about 0.3 MiB more
in the zygote, which its children share.

How: `sys._debugmallocstats()` (CPython) prints every size class's count of available blocks
to the C-level stderr; it is read back through an anonymous memory file, and that many objects
of exactly the class's size are made. This is a memory optimisation only: on an interpreter
that prints nothing this module can parse, nothing is filled and nothing else changes.
"""
from __future__ import annotations

import os
import re
import sys

# One row of the size-class table: class, size, pools, blocks in use, available blocks.
_ROW = re.compile(rb"^\s*\d+\s+(\d+)\s+\d+\s+\d+\s+(\d+)\s*$", re.MULTILINE)
# The largest size class pymalloc serves; larger objects come from the C library's malloc.
_SMALL_LIMIT = 512
# sizeof(PyBytesObject) for an empty bytes object: a bytes object of length n asks the
# allocator for exactly _BYTES_BASE + n bytes.
_BYTES_BASE = sys.getsizeof(b"")
# pymalloc rounds every request up to a multiple of this (64-bit builds).
_ALIGN = 16
# A one-digit int (28 bytes on 64-bit builds) fills a 32-byte block; a plain `object()`
# (16 bytes, no GC header) a 16-byte one.
_INT_SIZE = sys.getsizeof(10**7)
_OBJECT_SIZE = sys.getsizeof(object())


def _block(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


def available_blocks() -> dict[int, int]:
    """{block size: available blocks} per pymalloc size class; {} when it cannot be read."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return {}
    out_fd = os.memfd_create("mallocstats", os.MFD_CLOEXEC)
    saved = os.dup(2)
    try:
        sys.stderr.flush()
        os.dup2(out_fd, 2)
        try:
            stats()
        finally:
            os.dup2(saved, 2)
        os.lseek(out_fd, 0, os.SEEK_SET)
        text = b"".join(iter(lambda: os.read(out_fd, 1 << 16), b""))
    finally:
        os.close(saved)
        os.close(out_fd)
    return {int(size): int(avail) for size, avail in _ROW.findall(text)
            if 0 < int(size) <= _SMALL_LIMIT}


def _one(size: int, i: int) -> object | None:
    """A new object that occupies exactly one `size`-byte block (None if we know of none)."""
    if size >= _BYTES_BASE + 2:  # lengths 0 and 1 are shared singletons
        return b"\0" * (size - _BYTES_BASE)
    if size == _block(_INT_SIZE):
        return 10**7 + i  # above the small-int cache, so each is a new object
    if size == _block(_OBJECT_SIZE):
        return object()
    return None


def fill() -> list[object]:
    """Occupy every available small block; keep the returned list alive to keep them filled."""
    avail = available_blocks()
    keep: list[object] = [None] * sum(avail.values())  # one allocation, made before the fill
    n = 0
    for size, count in sorted(avail.items()):
        for i in range(count):
            obj = _one(size, i)
            if obj is None:
                break
            keep[n] = obj
            n += 1
    del keep[n:]
    return keep
