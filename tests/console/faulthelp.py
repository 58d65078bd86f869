"""One fault-injection rig for the console's pages (the tests in tests/console share it): the
host's store held by another process, a policy folder that does not load, a keyring that does
not read; and `probe`, which sends one console request while another request of the front runs
alongside it, to show whether the first held the event loop (every request of the front waits
while one handler blocks it)."""
from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from host.home import Home

# How long a page may take to answer under a fault, and how long another request may wait on it.
ANSWER_S = 3.0
OTHERS_WAIT_S = 1.0  # under a loaded CI's two workers; before the fix: ~9.7 s


@contextmanager
def held_store(home: Home) -> Iterator[None]:
    """Another process holds the host's store (a migration, a backup): `BEGIN EXCLUSIVE` on
    host.db from a connection of its own, until the block ends."""
    lock = sqlite3.connect(home.host_db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        lock.execute("ROLLBACK")
        lock.close()


def unloadable_policy(home: Home) -> None:
    """A policy folder that does not load: one file of it is not TOML."""
    (home.policies_dir / "broken.toml").write_text("schema = [[[\n")


def unreadable_keyring(home: Home) -> None:
    """The host's keyring does not read: its file is not JSON."""
    (home.keys_dir / "keyring.json").write_text("{not json")


def csrf_of(c: httpx.Client, path: str = "/console/install") -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', c.get(path).text)
    assert m is not None
    return m.group(1)


@dataclass
class Probed:
    response: httpx.Response | None  # None: no answer in time, or the connection reset
    took_s: float
    others_wait_s: float  # how long a sign-in page asked meanwhile took


def probe(c: httpx.Client, method: str, path: str, **kwargs: Any) -> Probed:
    """Send `method path` on `c` and, 0.3 s into it, ask the front for its sign-in page from
    another client: how long each took."""
    waits: list[float] = []

    def other() -> None:
        time.sleep(0.3)
        t = time.monotonic()
        httpx.get(f"{c.base_url}/console/login", timeout=30)
        waits.append(time.monotonic() - t)

    t = threading.Thread(target=other)
    t.start()
    start = time.monotonic()
    try:
        r: httpx.Response | None = c.request(method, path, timeout=30, **kwargs)
    except httpx.TransportError:  # no answer in time, or the connection reset (a 500)
        r = None
    took = time.monotonic() - start
    t.join()
    return Probed(r, took, waits[0])
