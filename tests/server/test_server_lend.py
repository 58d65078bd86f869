"""`Database.lend`: the server's writes on a connection its owner's transaction lends it
(`host.gate.onetx`): they neither begin nor commit, their events wait for the owner, and the
owner's connection is given back as it was lent."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from srvhelp import op

from host.clock import ManualClock
from host.server import Forbidden, NotFound
from host.server.embedded import EmbeddedServer
from host.server.principals import SYSTEM, Caller


@pytest.fixture()
def shared(tmp_path: Path) -> tuple[EmbeddedServer, sqlite3.Connection]:
    path = tmp_path / "host.db"
    server = EmbeddedServer(path, ManualClock(1000.0))
    owner = sqlite3.connect(path, isolation_level=None)
    return server, owner


APP = Caller(app_id="lender", install_id="in_lender", app_user_id=None)


def test_a_lent_write_commits_and_rolls_back_with_its_owner(
        shared: tuple[EmbeddedServer, sqlite3.Connection]) -> None:
    server, owner = shared
    owner.execute("BEGIN IMMEDIATE")
    with server.db.lend(owner) as loan:
        kept = server.users_create(APP, "kept", "K", "bot", op_id=op())
    assert owner.in_transaction and loan.events == []
    owner.execute("COMMIT")
    owner.execute("BEGIN IMMEDIATE")
    with server.db.lend(owner):
        server.users_create(APP, "dropped", "D", "bot", op_id=op())
    owner.execute("ROLLBACK")
    assert server.users_get(SYSTEM, kept["id"])["username"] == "kept"
    with pytest.raises(NotFound):
        server.users_get_by_username(SYSTEM, "dropped")


def test_events_wait_in_the_loan_and_the_owners_rows_come_back(
        shared: tuple[EmbeddedServer, sqlite3.Connection]) -> None:
    server, owner = shared
    heard: list[str] = []
    server.subscribe(lambda name, payload: heard.append(name))
    agent = server.users_create(SYSTEM, "agent", "A", "user")["id"]
    server.livechat_add_agent(SYSTEM, agent)
    visitor = server.save_visitor("lend-visitor-token", "V")["id"]
    server.visitor_start_room(visitor)  # nobody available: it waits
    heard.clear()
    owner.execute("BEGIN IMMEDIATE")
    with server.db.lend(owner) as loan:
        server.livechat_set_agent_status(SYSTEM, agent, "available", op_id=op())
    assert heard == [] and [name for name, _ in loan.events] == ["livechat.agent_assigned"]
    assert owner.row_factory is None  # the owner's plain rows, as it lent it
    assert isinstance(owner.execute("SELECT 1").fetchone(), tuple)
    owner.execute("COMMIT")


def test_a_loan_needs_an_open_transaction_and_is_not_nested(
        shared: tuple[EmbeddedServer, sqlite3.Connection]) -> None:
    server, owner = shared
    with pytest.raises(RuntimeError, match="inside a SQLite transaction"):
        with server.db.lend(owner):
            pass
    owner.execute("BEGIN IMMEDIATE")
    other: Any = sqlite3.connect(server.db.path, isolation_level=None)
    other.execute("BEGIN")
    with server.db.lend(owner):
        with pytest.raises(RuntimeError, match="nested"):
            with server.db.lend(other):
                pass
    owner.execute("ROLLBACK")
    other.execute("ROLLBACK")
    assert server.db.loan() is None


def test_a_lent_write_with_a_used_op_id_applies_nothing(
        shared: tuple[EmbeddedServer, sqlite3.Connection]) -> None:
    """A lent write skips the op log's look-up (the gate's op_id is fresh for each admission):
    an op_id that is not fresh is still refused, by the ops table's primary key, and the
    lender's rollback leaves no second user; outside a loan the retry gets the first answer."""
    server, owner = shared
    used = op()
    first = server.users_create(APP, "first", "F", "bot", op_id=used)
    owner.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.IntegrityError), server.db.lend(owner):
        server.users_create(APP, "second", "S", "bot", op_id=used)
    owner.execute("ROLLBACK")
    with pytest.raises(NotFound):
        server.users_get_by_username(SYSTEM, "second")
    assert server.users_create(APP, "first", "F", "bot", op_id=used) == first


def test_a_lent_creation_is_refused_a_privileged_role(
        shared: tuple[EmbeddedServer, sqlite3.Connection]) -> None:
    server, owner = shared
    owner.execute("BEGIN IMMEDIATE")
    with pytest.raises(Forbidden, match="privileged role 'admin'"), server.db.lend(owner):
        server.users_create(APP, "climber", "C", "user", roles=["bot", "admin"], op_id=op())
    owner.execute("ROLLBACK")
    assert server.count_users_created_by("lender") == 0
