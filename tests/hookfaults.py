"""A host whose store refuses the first "hook done" mark (the write lock held past the busy
timeout): the lifecycle-hook tests' store fault."""
from __future__ import annotations

import sqlite3

import pytest

from host.apps.installs import InstallStore


def hook_mark_locked_once(installs: InstallStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """`installs.mark_hook_done` raises SQLite's "database is locked" once, then marks as
    before. Returns the seqs it refused (one, once it has)."""
    real = installs.mark_hook_done
    failed: list[int] = []

    def locked_once(seq: int) -> None:
        if not failed:
            failed.append(seq)
            raise sqlite3.OperationalError("database is locked")
        real(seq)

    monkeypatch.setattr(installs, "mark_hook_done", locked_once)
    return failed
