"""No two homes on one machine give their apps the same uid (DESIGN rule 5, across homes).

Each home numbered its installs' uids from the range's first one in its own store, so a second
home on the machine (or `stockade demo` run as root beside a serving home) gave its first app
the very uid of the first home's first app: the kernel could no longer tell the two apps apart.
Now each home numbers within a block of uids it holds on this machine
(`host/supervise/uidblocks.py`, claims in /var/lib/stockade/app-uid-blocks).

What must hold (root only: only a root host gives apps uids): two live homes' installs never
share a uid, and a restart keeps each install's uid; a home whose block another live home
holds here (two older homes both numbered from the first block) is numbered again into a free
block, together; a home that is gone gives its block up to the next home that needs one.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from host.home import Home
from host.supervise.identities import APP_UID_BASE, Identities
from host.supervise.uidblocks import BLOCK_SIZE, CLAIMS_DIR, hold

# Only a root host gives apps uids of their own (CI runs as root, where these run).
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="app uids are given by root hosts")


def _uids(home: Home, *installs: str) -> list[int]:
    ids = Identities(home.host_store)
    try:
        return [ids.of(i) for i in installs]
    finally:
        ids.close()


@root_only
def test_two_homes_never_share_an_app_uid(tmp_path: Path) -> None:
    a = Home(tmp_path / "a").ensure()
    b = Home(tmp_path / "b").ensure()
    ua = _uids(a, "i-a1", "i-a2")
    ub = _uids(b, "i-b1", "i-b2")
    assert not set(ua) & set(ub), (ua, ub)
    assert _uids(a, "i-a1", "i-a2") == ua and _uids(b, "i-b1", "i-b2") == ub  # kept
    claims = {p.read_text() for p in CLAIMS_DIR.glob("block-*")}
    assert {str(a.host_store.resolve()), str(b.host_store.resolve())} <= {
        os.path.realpath(c) for c in claims}


@root_only
def test_a_home_numbered_in_a_held_block_moves_to_a_free_one(tmp_path: Path) -> None:
    a = Home(tmp_path / "a").ensure()
    (ua,) = _uids(a, "i-a1")
    b = Home(tmp_path / "b").ensure()
    _uids(b, "i-b0")  # b's table exists; then, as an older release left it, in a's block
    with sqlite3.connect(b.host_store) as c:
        c.execute("DELETE FROM app_identity")
        c.execute("INSERT INTO app_identity VALUES ('i-b1', ?), ('i-b2', ?)", (ua, ua + 1))
    ub = _uids(b, "i-b1", "i-b2")
    assert ub[0] != ua and ub[1] == ub[0] + 1  # moved together, in order
    assert (ub[0] - APP_UID_BASE) % BLOCK_SIZE == (ua - APP_UID_BASE) % BLOCK_SIZE
    assert _uids(a, "i-a1") == [ua]  # the holder keeps its own


def test_a_gone_homes_block_is_given_to_the_next(tmp_path: Path) -> None:
    """The claim logic alone, on claims of its own: a SQLite home whose file is gone gives its
    block up; a live one, or a PostgreSQL store (maybe served from elsewhere), never does."""
    claims = tmp_path / "claims"
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    first.write_bytes(b"")
    second.write_bytes(b"")
    assert hold(str(first), None, 4, claims) == 0
    assert hold("postgresql://db/stockade?schema=x", None, 4, claims) == 1
    assert hold(str(second), None, 4, claims) == 2  # 0 and 1 are held by live homes
    first.unlink()  # the first home is gone
    assert hold(str(tmp_path / "third.db"), None, 4, claims) == 0  # its block taken over
    assert hold(str(second), 2, 4, claims) == 2  # its own, again
