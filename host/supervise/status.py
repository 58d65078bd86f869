"""What each running app is doing, published by the serving host for other processes to read.

The CLI (`stockade app list`, `doctor`) runs in its own process and cannot ask a running host's
runners; the host's upkeep thread writes one row per running app into `host.db` every few
seconds instead. A row says when it was written, so a reader can tell a live host's figures
from the last words of a host that has stopped (`is_fresh`).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from host.store import (
    SchemaItem,
    Step,
    StoreTarget,
    ensure_schema,
    lockholder,
    open_store,
    table_exists,
)

log = logging.getLogger("stockade.host")

SCHEMA_COMPONENT = "runner_status"
SCHEMA_VERSION = 2
DDL: tuple[SchemaItem, ...] = (
    "CREATE TABLE IF NOT EXISTS runner_status(install_id TEXT PRIMARY KEY, app_id TEXT NOT NULL,"
    " host_pid INTEGER NOT NULL, updated_at REAL NOT NULL, status TEXT NOT NULL)",
    # Version 2: the rows a host replaces are the ones its own id wrote, not its pid's. Hosts
    # sharing a store on several machines (or in containers, where every host may be pid 1)
    # deleted each other's rows on every publish, and a host that stopped cleared the others'.
    Step(2, "ALTER TABLE runner_status ADD COLUMN host_id TEXT"),
)
# How often the serving host publishes (its upkeep thread's period, `host.runtime`).
PUBLISH_INTERVAL_S = 2.0
# A row older than this many publish intervals is a stopped host's, not a live one's.
STALE_AFTER_INTERVALS = 3


class StatusBoard:
    """The serving host's side: replace its rows with the runners' current status."""

    def __init__(self, db_path: StoreTarget, host_pid: int, host_id: str) -> None:
        self.store = open_store(db_path)
        self.host_pid = host_pid  # shown (`doctor`, `app list --json`); host_id owns the rows
        self.host_id = host_id
        self._locked_by = ""  # who held the store's write lock at the last failed publish
        ensure_schema(self.store, SCHEMA_COMPONENT, SCHEMA_VERSION, DDL)

    def publish(self, now: float, rows: Mapping[str, tuple[str, Mapping[str, Any]]]) -> None:
        """`rows`: install id -> (app id, status). Rows of apps no longer running go."""
        with self.store.transaction() as c:
            c.execute("DELETE FROM runner_status WHERE host_id=?", (self.host_id,))
            c.executemany(
                "INSERT INTO runner_status(install_id, app_id, host_pid, host_id, updated_at,"
                " status) VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(install_id) DO UPDATE SET"
                " app_id=excluded.app_id, host_pid=excluded.host_pid,"
                " host_id=excluded.host_id, updated_at=excluded.updated_at,"
                " status=excluded.status",
                [(iid, app_id, self.host_pid, self.host_id, now,
                  json.dumps(dict(st), sort_keys=True))
                 for iid, (app_id, st) in rows.items()])

    def publish_or_say(self, now: float, rows: Mapping[str, tuple[str, Mapping[str, Any]]],
                       where: Path | None = None) -> None:
        """`publish`, logging why not instead of raising (the upkeep's round goes on). A store
        another process keeps locked past the busy timeout (a host stopped by SIGSTOP in a
        write) is one line naming that process, said again only when that changes: it was a
        traceback every round that named no one."""
        try:
            self.publish(now, rows)
        except Exception as exc:
            if not (where is not None and lockholder.store_locked(exc)):
                log.exception("could not publish the apps' status")
                return
            said = lockholder.db_write_lock_holder(where)
            if said != self._locked_by:
                self._locked_by = said
                log.error("could not publish the apps' status: %s has held %s's write lock "
                          "past the busy timeout (every write of this host waits on it)",
                          said, where)
        else:
            self._locked_by = ""

    def clear(self) -> None:
        """The host stops: its apps are no longer running anywhere."""
        with self.store.transaction() as c:
            c.execute("DELETE FROM runner_status WHERE host_id=?", (self.host_id,))

    def close(self) -> None:
        self.store.close()


def read_status(target: StoreTarget) -> dict[str, dict[str, Any]]:
    """install id -> {"app_id", "updated_at", "host_pid", **status}; empty when no host ever
    published."""
    if isinstance(target, Path) and not target.exists():
        return {}
    store = open_store(target, readonly=True)
    c = store.conn()
    try:
        if not table_exists(c, "runner_status"):
            return {}
        out: dict[str, dict[str, Any]] = {}
        for iid, app_id, pid, ts, raw in c.execute(
                "SELECT install_id, app_id, host_pid, updated_at, status FROM runner_status"):
            out[str(iid)] = {**json.loads(raw), "app_id": str(app_id), "updated_at": float(ts),
                             "host_pid": int(pid)}
        return out
    finally:
        store.close()


def is_fresh(row: Mapping[str, Any], now: float) -> bool:
    """Whether `row` was written within the window either side of `now`. A row dated ahead of
    it was written before the clock stepped back: a live host has written its rows again since,
    with the stepped clock; a killed host's rows were shown as live until the clock caught up."""
    return abs(now - float(row["updated_at"])) <= STALE_AFTER_INTERVALS * PUBLISH_INTERVAL_S
