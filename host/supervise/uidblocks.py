"""Which block of app uids each home holds on this machine (DESIGN rule 5, across homes).

Each home numbers its installs' uids in its own store (`host.supervise.identities`), so two
homes on one machine (a second home, `stockade demo` run as root beside a serving home) both
started at the range's first uid: their apps shared uids, and the kernel's permission checks no
longer told them apart. Now the range is cut into blocks of BLOCK_SIZE uids and a home numbers
its installs within a block it holds on this machine: a claim is a file in CLAIMS_DIR naming the
home's store, made under a lock. A claim whose home is gone (a SQLite store whose file no
longer exists) is taken over; a home whose block another live home holds here is numbered
again into a free one (its children take the new uids at their next start; no file belongs to
an app uid, so nothing is left behind).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

# Where this machine's claims live: one file per block held, naming the holder's store. Root's,
# like the uids it guards (only a root host gives apps uids of their own).
CLAIMS_DIR = Path("/var/lib/stockade/app-uid-blocks")
# Uids per block: the installs one home can have on one machine (each install keeps its uid).
BLOCK_SIZE = 1 << 16
MAX_HOLDER = 4096  # a claim file's size: a store's name (a path, or a redacted URL)


class BlockError(RuntimeError):
    """No block free on this machine, or its claims cannot be read or written."""


@contextlib.contextmanager
def _locked(claims: Path) -> Iterator[None]:
    claims.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(claims / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it


def _holder(claims: Path, block: int) -> str | None:
    try:
        with open(claims / f"block-{block}", "rb") as f:
            return f.read(MAX_HOLDER).decode("utf-8", "replace")
    except FileNotFoundError:
        return None


def _gone(holder: str) -> bool:
    """A claim whose home no longer exists: a SQLite store's file that is not there. A
    PostgreSQL store's claim is never taken for gone (it may be served from another machine)."""
    return holder.startswith("/") and not os.path.exists(holder)


def _write(claims: Path, block: int, holder: str) -> None:
    tmp = claims / f".block-{block}.{os.getpid()}"
    tmp.write_text(holder, encoding="utf-8")
    os.replace(tmp, claims / f"block-{block}")


def hold(store: str, block: int | None, blocks: int, claims: Path = CLAIMS_DIR) -> int:
    """The block `store`'s home holds on this machine: `block` (the one its uids are in) when it
    is free here, its own, or its holder is gone; else the first such block, claimed for it.
    Raises BlockError when none is left."""
    try:
        with _locked(claims):
            order = ([block] if block is not None else []) + [
                b for b in range(blocks) if b != block]
            for b in order:
                holder = _holder(claims, b)
                if holder == store:
                    return b
                if holder is None or _gone(holder):
                    _write(claims, b, store)
                    return b
    except OSError as exc:
        raise BlockError(f"cannot keep this machine's app uid claims in {claims}: {exc}") from None
    raise BlockError(f"every block of app uids on this machine is held ({blocks}); remove "
                     f"the claims of homes no longer used from {claims}")
