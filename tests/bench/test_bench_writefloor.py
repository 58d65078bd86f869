"""`stockade bench --write-floor`: the SQL a create must commit, measured alone.

The floor is an argument about what no implementation can beat, so it must do all of a create's
durable work and nothing less: the first test compares, table by table and row by row, what one
real create through the gate changes with what one `three_commits` changes. No timing assertion.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from benchcli import quick_json
from gatehelp import POLICY, add_seat_ceiling, build_rig, install_fuzz_app

from host.bench import writefloor
from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer

Snapshot = dict[str, set[tuple[object, ...]]]


def _snapshot(conn: sqlite3.Connection) -> Snapshot:
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return {t: set(conn.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}


def _changed(before: Snapshot, after: Snapshot) -> dict[str, tuple[int, int]]:
    """Per table with any change: (rows gone or rewritten, rows new or rewritten)."""
    out = {}
    for t, rows in after.items():
        gone, new = len(before.get(t, set()) - rows), len(rows - before.get(t, set()))
        if gone or new:
            out[t] = (gone, new)
    return out


def _real_create_changes(tmp_path: Path, *, own_server_db: bool
                         ) -> tuple[dict[str, tuple[int, int]], ...]:
    """What one create through the gate changes: in host.db, and in server.db for a home whose
    server has a file of its own (made before the server's tables moved into host.db)."""
    home = Home(tmp_path / "home").ensure()
    if own_server_db:
        EmbeddedServer(home.root / "server.db", SystemClock()).close()
    install_fuzz_app(home)
    # The bench's create sets a custom field, so the rule lists its key (as `bench.toml` does).
    (home.policies_dir / "gatehelp.toml").write_text(
        POLICY.replace('roles = ["bot"]', 'roles = ["bot"]\ncustom_field_keys = ["externalId"]'))
    add_seat_ceiling(home)
    rig = build_rig(home, SystemClock())
    conns = [sqlite3.connect(path) for _label, path in home.sqlite_files()]

    def create(n: int) -> None:
        rig.gate.handle(rig.session, "users.create", {
            "username": f"u-{n}", "name": "Bench", "type": "bot", "roles": ["bot"],
            "custom_fields": {"externalId": f"ext-{n}"}})

    create(0)  # the first create makes the quota's rows
    before = [_snapshot(c) for c in conns]
    create(1)
    return tuple(_changed(b, _snapshot(c)) for b, c in zip(before, conns, strict=True))


def test_three_commits_changes_what_a_real_create_changes(tmp_path: Path) -> None:
    """A home whose server keeps its own server.db: the three commits."""
    real_host, real_server = _real_create_changes(tmp_path, own_server_db=True)
    shapes = writefloor.Shapes(tmp_path / "floor")
    shapes.three_commits()
    before = [_snapshot(c) for c in (shapes.host, shapes.server)]
    shapes.three_commits()
    floor_host, floor_server = (_changed(b, _snapshot(c))
                                for b, c in zip(before, (shapes.host, shapes.server), strict=True))
    # host.db: the ring slot and its key's head, two audit records (the intent comes and goes
    # within the create; seats are counted, not kept); server.db: user, role, custom field, op,
    # and the seat count its triggers keep.
    assert real_host == floor_host
    assert set(real_host) == {"quota_keys", "quota_slots", "audit"}
    assert real_host["audit"] == (0, 2)
    assert real_server == floor_server
    assert set(real_server) == {"users", "user_roles", "user_custom_fields", "ops", "app_seats"}


def test_one_tx_changes_what_a_real_create_changes(tmp_path: Path) -> None:
    """A home made now (the server's tables in host.db): the one transaction, row for row."""
    (real,) = _real_create_changes(tmp_path, own_server_db=False)
    shapes = writefloor.Shapes(tmp_path / "floor")
    shapes.one_tx()
    before = _snapshot(shapes.one)
    shapes.one_tx()
    assert real == _changed(before, _snapshot(shapes.one))


def test_one_commit_keeps_the_rows_the_design_could_not_drop(tmp_path: Path) -> None:
    shapes = writefloor.Shapes(tmp_path / "floor")
    shapes.one_commit()
    before = _snapshot(shapes.one)
    shapes.one_commit()
    changed = _changed(before, _snapshot(shapes.one))
    # Quota, seat count and one decision record, and the user with its role and field: no op record,
    # no outcome, as the module says.
    assert set(changed) == {"quota_keys", "quota_slots", "audit", "users",
                            "user_roles", "user_custom_fields", "app_seats"}
    assert changed["audit"] == (0, 1)


def test_write_floor_json_has_its_keys_and_a_consistent_order(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(writefloor, "QUICK", (50, 5, 1))
    figures, table = quick_json(tmp_path, "--write-floor", writefloor.KEYS)
    # Each sample's total holds its parts, so the median total is at least each part's median.
    for part in ("admit_us_p50", "server_write_us_p50", "outcome_us_p50"):
        assert figures["three_commits_us_p50"] >= figures[part]
    assert "one_commit_us_p50" in table


def test_one_tx_writes_what_three_commits_write_but_the_intent(tmp_path: Path) -> None:
    """The one-transaction shape leaves out only what a crash can no longer split: the intent."""
    shapes = writefloor.Shapes(tmp_path / "floor")
    shapes.one_tx()
    before = _snapshot(shapes.one)
    shapes.one_tx()
    changed = _changed(before, _snapshot(shapes.one))
    assert set(changed) == {"quota_keys", "quota_slots", "audit", "users", "user_roles",
                            "user_custom_fields", "ops", "app_seats"}
    assert changed["audit"] == (0, 2)  # the decision and the outcome
