"""A full disk under the server's store (issue 26, "Faults"): a create that could not be written
is refused cleanly, and its quota unit and seat come back at once, so after space returns the
quotas, seats, audit and server agree exactly.

The disk is real: the server's database lives on a small tmpfs that the test fills, so SQLite
itself answers "database or disk is full" (ENOSPC). The home's `server.db` is a symlink into it;
SQLite resolves the link, so its WAL lives there too. Mounting needs root, as the suite runs.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from gatehelp import (
    APP_ID,
    QUOTA_LIMIT,
    QUOTA_WINDOW_S,
    add_seat_ceiling,
    build_rig,
    install_fuzz_app,
)

from host import doctor
from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.runtime import Host, HostConfig

TMPFS_BYTES = 1 << 20  # room for the server's schema and a few users, then full


@contextlib.contextmanager
def small_disk(where: Path) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "stockade-test", where],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", where], check=False)


def fill(disk: Path) -> list[Path]:
    """Fill `disk` to the last byte; returns the filler files (delete them to free the space)."""
    fillers = []
    for i, chunk in enumerate((1 << 16, 4096, 1)):
        path = disk / f"filler{i}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * chunk)
        except OSError:
            pass  # ENOSPC: this chunk size no longer fits
        finally:
            os.close(fd)
        fillers.append(path)
    return fillers


def move_onto(db: Path, target: Path) -> None:
    """Move a SQLite database (with its WAL) to `target` and leave a symlink in its place."""
    c = sqlite3.connect(db)
    c.execute("VACUUM INTO ?", (str(target),))
    c.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.symlink_to(target)


def _create(rig, name: str) -> dict:
    return rig.gate.handle(rig.session, "users.create",
                           {"username": name, "name": name, "type": "bot", "roles": ["bot"]})


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_refuses_cleanly_and_gives_the_unit_back(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    install_fuzz_app(home)
    add_seat_ceiling(home)
    with small_disk(tmp_path / "disk") as disk:
        move_onto(home.server_db, disk / "server.db")
        rig = build_rig(home, SystemClock())
        key = f"install:{rig.install.install_id}:users.create"
        _create(rig, "first")  # fits
        fillers = fill(disk)
        disk_check = next(c for c in doctor.disk_checks(home) if "server" in c.name)
        assert not disk_check.ok and "disk full" in disk_check.detail
        with pytest.raises(GateError) as refused:
            _create(rig, "second")
        assert refused.value.code == "internal"
        assert "disk full" in refused.value.message
        # The unit and the seat are back at once, and the decision is settled, not pending.
        assert rig.ledger.quota_state(key, QUOTA_LIMIT, QUOTA_WINDOW_S).used == 1
        assert rig.ledger.seats_in_use(rig.server.seats_in_use) == 1
        assert rig.ledger.pending_intents() == []
        for f in fillers:
            f.unlink()
        # Space is back: a restart changes nothing, and the next create works.
        rig.ledger.close()
        with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
            assert host.ledger.pending_intents() == []
            assert host.ledger.quota_state(key, QUOTA_LIMIT, QUOTA_WINDOW_S).used == 1
            assert host.ledger.seats_in_use(host.server.seats_in_use) == 1
            assert host.server.count_users_created_by(APP_ID) == 1
        rig = build_rig(home, SystemClock())
        _create(rig, "third")
        assert rig.ledger.quota_state(key, QUOTA_LIMIT, QUOTA_WINDOW_S).used == 2
        rig.ledger.close()
        assert rig.ledger.audit.verify().ok
