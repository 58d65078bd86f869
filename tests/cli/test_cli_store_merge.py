"""`stockade store migrate` on a home whose embedded server keeps its own server.db: its data
moves into host.db in one transaction (`host/mergeserver.py`), so that server's writes on users,
roles, agents and rooms then commit with their decision and outcome (`host/gate/onetx.py`)."""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures
from gatehelp import APP_ID, build_rig, install_fuzz_app

from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import open_readonly
from host.runtime import Host, HostConfig
from host.server.embedded import EmbeddedServer
from host.server.personal_tokens import ensure_service_user
from host.server.principals import SYSTEM

QUIET = HostConfig(watch=False, use_zygote=False)


def _old_home(root: Path) -> Home:
    """A home made before the server's tables moved into host.db, with data in every kind of
    server table: an app's users (created through the gate), a room with a message, an
    operator with a token."""
    home = Home(root).ensure()
    EmbeddedServer(home.root / "server.db", SystemClock()).close()
    install_fuzz_app(home)
    rig = build_rig(home, SystemClock())
    for i in range(2):
        rig.gate.handle(rig.session, "users.create",
                        {"username": f"old-{i}", "name": "Old", "type": "bot", "roles": ["bot"]})
    server = EmbeddedServer(home.server_db, SystemClock())
    ensure_service_user(server, "ops")
    visitor = server.save_visitor("merge-visitor-token", "Visitor")["id"]
    room = server.visitor_start_room(visitor)
    server.visitor_send_message(visitor, room["id"], "hello before the move")
    server.close()
    rig.close()
    return home


def _doctor_warning(cli: Run) -> str:
    """`stockade doctor`'s "server data" line (a warning, not a failure), or ""."""
    r = cli("doctor", "--json")
    checks = json.loads(r.stdout)["checks"]
    found = [c for c in checks if c["name"] == "server data"]
    assert all(not c["required"] and not c["ok"] for c in found)
    return str(found[0]["detail"]) if found else ""


def _tables(path: Path, names: list[str]) -> dict[str, set[tuple[object, ...]]]:
    with sqlite3.connect(path) as c:
        return {t: set(c.execute(f'SELECT * FROM "{t}"').fetchall()) for t in names}


def _server_table_names(path: Path) -> list[str]:
    with sqlite3.connect(path) as c:
        return [str(r[0]) for r in c.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]


def test_migrate_moves_every_row_and_the_writes_become_one_transaction(
        cli: Run, home: Path) -> None:
    h = _old_home(home)
    os.chmod(h.host_db, 0o644)  # as an older release left it: it held no password hashes
    names = _server_table_names(h.root / "server.db")
    before = _tables(h.root / "server.db", names)
    status = cli("store", "status", "--json")
    assert status.exit_code == 1 and json.loads(status.stdout)["server_data"] == "server.db"
    assert "store migrate" in _doctor_warning(cli)
    r = cli("store", "migrate", "--json")
    assert r.exit_code == 0, r.output
    merged = json.loads(r.stdout)["server_merged"]
    assert merged["rows"]["users"] == len(before["users"]) and merged["rows"]["messages"] == 1
    assert not (h.root / "server.db").exists() and (h.root / merged["kept_as"]).exists()
    assert h.server_db == h.host_db
    assert _tables(h.host_db, names) == before  # every row of every table, as it was
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in h.root.glob("host.db*"))
    status = cli("store", "status", "--json")
    assert status.exit_code == 0 and json.loads(status.stdout)["server_data"] == "host.db"
    assert _doctor_warning(cli) == ""
    with Host(h, config=QUIET) as host:
        assert host.gate.server_calls is not None
        assert host.server.count_users_created_by(APP_ID) == 2
        assert host.ledger.seats_in_use(host.server.seats_in_use) == 2
    rig = build_rig(h, SystemClock())
    rig.gate.handle(rig.session, "users.create",
                    {"username": "new-0", "name": "New", "type": "bot", "roles": ["bot"]})
    with sqlite3.connect(h.host_db) as c:
        assert c.execute("SELECT n FROM app_seats").fetchone()[0] == 3
    records = [e.body for e in open_readonly(h.host_db, SystemClock()).tail(50)]
    assert any(b["kind"] == "operator.store_merge_server" for b in records)
    assert cli("audit", "verify").exit_code == 0
    assert cli("store", "migrate").exit_code == 0  # nothing more to move


def test_a_trigger_planted_in_server_db_is_not_carried_into_host_db(
        cli: Run, home: Path) -> None:
    """The schema comes from this release's code, never from the file: a trigger planted in
    server.db would otherwise run on the host's own tables (here: wipe the installs)."""
    h = _old_home(home)
    with sqlite3.connect(h.root / "server.db") as c:
        c.execute("CREATE TABLE install_installs (x)")  # so the trigger below compiles there
        c.execute("CREATE TRIGGER planted AFTER INSERT ON users BEGIN "
                  "DELETE FROM install_installs; END")
        c.execute("CREATE TABLE planted_table (x)")
    assert cli("store", "migrate").exit_code == 0
    with sqlite3.connect(h.host_db) as c:
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
    assert "planted" not in names and "planted_table" not in names
    EmbeddedServer(h.server_db, SystemClock()).users_create(SYSTEM, "after", "After", "user")
    assert cli("app", "list", "--json").stdout.count(APP_ID) >= 1


def test_migrate_refuses_while_a_host_serves_and_changes_nothing(cli: Run, home: Path) -> None:
    h = _old_home(home)
    with Host(h, config=QUIET):
        r = cli("store", "migrate")
        assert r.exit_code != 0 and "serving" in r.stderr and "Traceback" not in r.output
    assert (h.root / "server.db").exists() and h.server_db == h.root / "server.db"
    with sqlite3.connect(h.host_db) as c:
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'users'"
                         ).fetchone()[0] == 0


def test_a_merge_stopped_before_its_rename_is_done_again_from_server_db(
        cli: Run, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy committed into host.db whose server.db was not renamed (a crash in between) is
    never read while server.db exists, and the next migrate copies again, so writes made to
    server.db meanwhile are kept."""
    from host import mergeserver

    h = _old_home(home)
    real_replace = os.replace

    def stop(src: Any, dst: Any) -> None:
        if Path(src) == h.root / "server.db":  # the process stops here: committed, not renamed
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(mergeserver.os, "replace", stop)
    with pytest.raises(KeyboardInterrupt):
        mergeserver.merge_server_db(h)
    monkeypatch.setattr(mergeserver.os, "replace", real_replace)
    with sqlite3.connect(h.host_db) as c:  # the copy is in host.db
        assert c.execute("SELECT count(*) FROM users").fetchone()[0] > 0
    # marked as moved by the copy's transaction, but no merge runs: still the home's server
    assert h.server_db == h.root / "server.db"
    EmbeddedServer(h.server_db, SystemClock()).users_create(SYSTEM, "meanwhile", "M", "user")
    assert cli("store", "migrate").exit_code == 0
    assert EmbeddedServer(h.server_db, SystemClock()).users_get_by_username(
        SYSTEM, "meanwhile")["username"] == "meanwhile"


def test_a_write_between_the_merges_commit_and_its_rename_is_refused_not_lost(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-shot command (no lease) that opened server.db before the merge and writes after
    the copy committed, before the file is renamed: that write would have landed in the renamed
    file, read by nobody. It is refused with a message, and nothing of it is anywhere."""
    from host import mergeserver
    from host.store import StoreError

    h = _old_home(home)
    early = EmbeddedServer(h.root / "server.db", SystemClock())  # opened before the merge
    early.users_get_by_username(SYSTEM, "old-0")
    refused: list[str] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(src) == h.root / "server.db":  # the window: committed, not yet renamed
            with pytest.raises(StoreError, match=r"moved into host\.db") as caught:
                early.users_create(SYSTEM, "in-the-window", "W", "user")
            refused.append(str(caught.value))
        real_replace(src, dst)

    monkeypatch.setattr(mergeserver.os, "replace", replace)
    merged = mergeserver.merge_server_db(h)
    assert merged is not None and refused
    now = EmbeddedServer(h.server_db, SystemClock())
    assert h.server_db == h.host_db and now.users_get_by_username(SYSTEM, "old-0")
    with sqlite3.connect(h.root / merged.kept_as) as kept, sqlite3.connect(h.host_db) as main:
        for c in (kept, main):
            assert c.execute("SELECT count(*) FROM users WHERE username = 'in-the-window'"
                             ).fetchone()[0] == 0


@pytest.mark.parametrize("after", ["renamed", "a new server.db in its place"])
def test_a_write_long_after_the_merge_is_refused_not_lost(home: Path, after: str) -> None:
    """The window did not end with the rename: a command that opened server.db before the
    merge and writes after it finished (it sat at a prompt) wrote into the renamed file, read
    by nobody, and was told it succeeded. Refused, whether or not a file is at the old name."""
    from host import mergeserver
    from host.store import StoreError

    h = _old_home(home)
    early = EmbeddedServer(h.root / "server.db", SystemClock())  # opened before the merge
    early.users_get_by_username(SYSTEM, "old-0")
    merged = mergeserver.merge_server_db(h)
    assert merged is not None
    if after != "renamed":
        sqlite3.connect(h.root / "server.db").close()  # an empty file at the old name
    with pytest.raises(StoreError, match=r"moved into host\.db"):
        early.users_create(SYSTEM, "after-merge", "A", "user")
    with sqlite3.connect(h.root / merged.kept_as) as kept, sqlite3.connect(h.host_db) as main:
        for c in (kept, main):
            assert c.execute("SELECT count(*) FROM users WHERE username = 'after-merge'"
                             ).fetchone()[0] == 0
