"""The seat count the database keeps (`app_seats`, schema version 4) equals the truth — the
active app-created users — after any write to `users`, by any route, and after a migration."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host.server import users
from host.server.db import Database
from host.server.migrations import MIGRATIONS, _statements

TRUTH = "SELECT count(*) FROM users WHERE created_by_app IS NOT NULL AND active = 1"

# (op, user index, app or None, active): raw SQL, as any route (bridge, REST, a lifecycle hook,
# an operator's command) ends up writing the table.
OPS = st.lists(st.tuples(st.sampled_from(["insert", "active", "creator", "delete", "upsert"]),
                         st.integers(0, 5), st.sampled_from([None, "a1", "a2"]),
                         st.sampled_from([0, 1])), max_size=40)


def _apply(c: sqlite3.Connection, op: str, i: int, app: str | None, active: int) -> None:
    uid = f"u{i}"
    if op == "insert":
        c.execute("INSERT OR IGNORE INTO users (id, type, username, username_cf, name, active,"
                  " created_by_app, created_at) VALUES (?, 'bot', ?, ?, 'N', ?, ?, 0)",
                  (uid, uid, uid, active, app))
    elif op == "active":
        c.execute("UPDATE users SET active = ? WHERE id = ?", (active, uid))
    elif op == "creator":
        c.execute("UPDATE users SET created_by_app = ? WHERE id = ?", (app, uid))
    elif op == "delete":
        c.execute("DELETE FROM users WHERE id = ?", (uid,))
    else:
        c.execute("INSERT INTO users (id, type, username, username_cf, name, active,"
                  " created_by_app, created_at) VALUES (?, 'bot', ?, ?, 'N', ?, ?, 0)"
                  " ON CONFLICT (id) DO UPDATE SET active = excluded.active,"
                  " created_by_app = excluded.created_by_app", (uid, uid, uid, active, app))


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_the_kept_count_equals_the_truth_after_any_writes(tmp_path_factory: object,
                                                          ops: list[tuple[str, int, str | None,
                                                                          int]]) -> None:
    db = Database(Path(str(tmp_path_factory.mktemp("seats"))) / "server.db")  # type: ignore[attr-defined]
    with db.write() as c:
        for op in ops:
            _apply(c, *op)
            assert users.count_active_app_created(c) == c.execute(TRUTH).fetchone()[0]


@pytest.fixture(scope="module")
def shared_db() -> Database:
    """The server's tables in a real PostgreSQL (docs/SCALE.md): the counter is one PL/pgSQL
    trigger there, not SQLite's three."""
    import pghelp

    from host.migrate import migrate

    url = pghelp.cluster().fresh_url()
    migrate(url)
    return Database(url)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_the_kept_count_equals_the_truth_on_postgresql(
        shared_db: Database, ops: list[tuple[str, int, str | None, int]]) -> None:
    with shared_db.write() as c:
        c.execute("DELETE FROM users")
        for op in ops:
            _apply(c, *op)
            assert users.count_active_app_created(c) == c.execute(TRUTH).fetchone()[0]


def test_a_rolled_back_write_leaves_the_count_alone(tmp_path: Path) -> None:
    db = Database(tmp_path / "server.db")
    with db.write() as c:
        _apply(c, "insert", 1, "a1", 1)
    try:
        with db.write() as c:
            _apply(c, "insert", 2, "a1", 1)
            raise RuntimeError("server write failed")
    except RuntimeError:
        pass
    with db.read() as c:
        assert users.count_active_app_created(c) == 1 == c.execute(TRUTH).fetchone()[0]


def test_the_migration_starts_from_the_users_already_there(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1),"
              " version INTEGER NOT NULL)")
    for m in MIGRATIONS[:2]:
        for stmt in _statements(m):
            c.execute(stmt)
    c.execute("INSERT INTO schema_version VALUES (1, 2)")
    for i, (app, active) in enumerate([("a1", 1), ("a1", 0), (None, 1), ("a2", 1)]):
        _apply(c, "insert", i, app, active)
    c.close()
    db = Database(path)
    with db.read() as r:
        assert users.count_active_app_created(r) == 2
