"""The embedded server's writes in the gate's own transaction (DESIGN rule 9, `host.gate.onetx`).

A home's embedded server keeps its tables in host.db, so a write on users, roles, agents or rooms
commits its decision, quota unit, seat check, the server's write and its outcome together. The
claims attacked here: nothing of a write survives its transaction failing (no user, no record,
no unit, no event); no app hears of a write before it is committed; seats stay exact when several
hosts race for the last one; a home whose server has its own server.db keeps three commits."""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from gatehelp import APP_ID, add_seat_ceiling, build_rig, install_fuzz_app

from host.clock import SystemClock
from host.errors import GateError
from host.gate import gate as gate_mod
from host.home import Home
from host.ledger import ledger as ledger_mod
from host.ledger.audit import open_readonly
from host.server.embedded import EmbeddedServer
from host.server.principals import SYSTEM


@pytest.fixture()
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home").ensure()
    install_fuzz_app(h)
    return h


def _create(rig: Any, name: str) -> Any:
    return rig.gate.handle(rig.session, "users.create",
                           {"username": name, "name": "One", "type": "bot", "roles": ["bot"]})


def _records(home: Home) -> list[dict[str, Any]]:
    with sqlite3.connect(home.host_db) as c:
        return [json.loads(b) for (b,) in c.execute("SELECT body FROM audit ORDER BY seq")]


def test_the_servers_data_is_in_host_db_and_its_writes_join_the_admission(home: Home) -> None:
    assert home.server_db == home.host_db and not (home.root / "server.db").exists()
    rig = build_rig(home, SystemClock())
    assert rig.gate.server_calls is not None
    user = _create(rig, "joined")
    with sqlite3.connect(home.host_db) as c:
        assert c.execute("SELECT count(*) FROM users WHERE id = ?", (user["id"],)).fetchone()[0]
        assert c.execute("SELECT count(*) FROM audit_intents").fetchone()[0] == 0
    # the decision and the outcome, committed with the user: neither waits for a later commit
    mine = [r for r in _records(home) if r.get("op_id") and r.get("action") == "users.create"]
    assert [(r["kind"], r.get("ok")) for r in mine] == [("decision", None), ("outcome", True)]
    # It now holds the server's users and their password and token hashes: the owner's only.
    for f in home.root.glob("host.db*"):
        assert f.stat().st_mode & 0o777 == 0o600, f.name


def _queued_room_and_agent(rig: Any) -> tuple[str, str]:
    """A room waiting for an agent, and an agent of the app's that is not routable until the
    app gives it the `bot` role (`roles.assign` then routes the queue: agent_assigned)."""
    server = rig.server._server
    agent = rig.gate.handle(rig.session, "users.create",
                            {"username": "queue-agent", "name": "Agent", "type": "bot"})["id"]
    server.roles_remove(SYSTEM, agent, "bot")  # a bot is routable while offline
    server.livechat_add_agent(SYSTEM, agent)
    visitor = server.save_visitor("one-tx-visitor-token", "Visitor")["id"]
    room = server.visitor_start_room(visitor)
    assert room["served_by"] is None
    return str(room["id"]), str(agent)


def _assign_bot(rig: Any, user_id: str) -> Any:
    return rig.gate.handle(rig.session, "roles.assign", {"user_id": user_id, "role": "bot"})


def test_a_write_whose_transaction_fails_leaves_nothing_and_tells_no_one(
        home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outcome record cannot be written after the server's write ran inside the admission:
    the role, the routing, the decision, the unit and the event all go with the rollback."""
    rig = build_rig(home, SystemClock())
    room, agent = _queued_room_and_agent(rig)
    heard: list[str] = []
    rig.server._server.subscribe(lambda name, payload: heard.append(name))
    records = len(_records(home))

    def outcome_fails(*a: Any, **kw: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")
    monkeypatch.setattr(ledger_mod, "_outcome_body", outcome_fails)
    with pytest.raises((GateError, sqlite3.Error)):
        _assign_bot(rig, agent)
    monkeypatch.undo()
    server = EmbeddedServer(home.server_db, SystemClock())
    assert "bot" not in server.users_get(SYSTEM, agent)["roles"]
    assert server.livechat_get_room(SYSTEM, room)["served_by"] is None
    assert heard == [], "no app may hear of a write that was rolled back"
    assert len(_records(home)) == records
    assert open_readonly(home.host_db, SystemClock()).verify().ok
    _assign_bot(rig, agent)  # and the same write, committed, is heard
    assert heard == ["livechat.agent_assigned"]


def test_an_op_id_drawn_twice_never_creates_twice(
        home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lent write does not look its op_id up (the gate draws a fresh one per admission): were
    one drawn twice, the op log's key refuses the second inside the admission, everything rolls
    back, and the three-commit path refuses it as a reused op_id. One user, never two."""
    rig = build_rig(home, SystemClock())
    monkeypatch.setattr(gate_mod.secrets, "token_hex", lambda n: "ab" * n)
    _create(rig, "drawn-once")
    with pytest.raises(GateError) as refused:
        _create(rig, "drawn-twice")
    assert refused.value.code == "conflict" and "already used" in refused.value.message
    with sqlite3.connect(home.host_db) as c:
        names = [n for (n,) in c.execute("SELECT username FROM users WHERE created_by_app = ?",
                                         (APP_ID,))]
    assert names == ["drawn-once"]
    assert open_readonly(home.host_db, SystemClock()).verify().ok


def test_an_event_is_emitted_only_once_its_write_is_committed(home: Home) -> None:
    """A subscriber reading from a connection of its own finds the routing its event names:
    the event left after the commit, not from inside the transaction."""
    rig = build_rig(home, SystemClock())
    _room, agent = _queued_room_and_agent(rig)
    seen: list[object] = []

    def look(name: str, payload: dict[str, Any]) -> None:
        with sqlite3.connect(home.host_db, timeout=0.2) as other:
            seen.append(other.execute("SELECT served_by FROM rooms WHERE id = ?",
                                      (payload["room"]["id"],)).fetchone()[0])
    rig.server._server.subscribe(look)
    _assign_bot(rig, agent)
    assert seen == [agent]


def test_racing_hosts_never_take_more_seats_than_the_ceiling(home: Home) -> None:
    """Four rigs (each as a host of its own: its ledger, connections and gate) race for two
    seats; the seat check and the creation commit in one transaction holding the write lock."""
    add_seat_ceiling(home, 2)
    (home.policies_dir / "gatehelp.toml").write_text(
        (home.policies_dir / "gatehelp.toml").read_text().replace("limit = 3\n", "limit = 50\n"))
    rigs = [build_rig(home, SystemClock()) for _ in range(4)]
    assert all(r.gate.server_calls is not None for r in rigs)
    made: list[str] = []
    refused: list[str] = []
    start = threading.Barrier(len(rigs))

    def race(i: int, rig: Any) -> None:
        start.wait()
        for k in range(3):
            try:
                made.append(_create(rig, f"seat-{i}-{k}")["id"])
            except GateError as exc:
                refused.append(exc.message)

    threads = [threading.Thread(target=race, args=(i, r)) for i, r in enumerate(rigs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(made) == 2 and len(refused) == 10
    assert all("workspace:seats" in m for m in refused)
    assert EmbeddedServer(home.server_db, SystemClock()).count_users_created_by(APP_ID) == 2


def test_a_home_with_its_own_server_db_keeps_three_commits(tmp_path: Path) -> None:
    h = Home(tmp_path / "home").ensure()
    EmbeddedServer(h.root / "server.db", SystemClock()).close()  # a home made before
    install_fuzz_app(h)
    assert h.server_db == h.root / "server.db"
    rig = build_rig(h, SystemClock())
    assert rig.gate.server_calls is None
    user = _create(rig, "apart")
    with sqlite3.connect(h.root / "server.db") as c:
        assert c.execute("SELECT count(*) FROM users WHERE id = ?", (user["id"],)).fetchone()[0]
    with sqlite3.connect(h.host_db) as c:
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'users'"
                         ).fetchone()[0] == 0


def test_every_server_write_is_one_transaction_but_the_messages() -> None:
    """Each write action is in the transaction or out of it by decision: a message runs other
    apps' pre-send hooks, whose calls need the write lock, so it stays on three commits; a new
    write action fails here until it is put on one side."""
    from host.gate.onetx import LENT_ACTIONS
    from host.server.adapter import ACTION_METHODS
    from policies.vocabulary import ACTIONS

    writes = {a for a in ACTION_METHODS if ACTIONS[a].write}
    assert LENT_ACTIONS <= writes
    assert writes - LENT_ACTIONS == {"messages.send", "messages.send_as_user",
                                     "livechat.relay_message"}


def test_a_room_write_commits_with_its_records_and_is_heard_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A room an app opens through a real host: gone with its transaction when the outcome
    cannot be recorded (no room, no event); committed with its records otherwise, no intent,
    and room_started heard by a subscriber only once the room is there to read."""
    from apphelp import install, write_app, write_policy

    from host.runtime import Host, HostConfig

    home = Home(tmp_path / "home").ensure()
    write_policy(home, "rooms", '''schema = 1
name = "rooms"
[[rule]]
id = "opener"
effect = "permit"
apps = ["opener"]
actions = ["livechat.create_room"]
''')
    install(home, write_app(tmp_path / "apps", "opener", ["livechat.write"], [],
                            "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        assert host.gate.server_calls is not None
        visitor = host.server.save_visitor("room-visitor-token", "V")["id"]
        seen: list[int] = []

        def look(name: str, payload: dict[str, Any]) -> None:
            if name == "livechat.room_started":
                with sqlite3.connect(home.host_db, timeout=0.2) as other:
                    seen.append(other.execute("SELECT count(*) FROM rooms WHERE id = ?",
                                              (payload["room"]["id"],)).fetchone()[0])
        host.server.subscribe(look)
        runner = next(iter(host.runners.values()))
        runner.ensure_started()
        assert runner.session is not None

        def outcome_fails(*a: Any, **kw: Any) -> Any:
            raise sqlite3.OperationalError("disk I/O error")
        monkeypatch.setattr(ledger_mod, "_outcome_body", outcome_fails)
        with pytest.raises((GateError, sqlite3.Error)):
            host.gate.handle(runner.session, "livechat.create_room", {"visitor_id": visitor})
        monkeypatch.undo()
        assert host.server.livechat_list_rooms(SYSTEM) == [] and seen == []
        room = host.gate.handle(runner.session, "livechat.create_room",
                                {"visitor_id": visitor})
        assert seen == [1]
        assert host.ledger.pending_intents() == []
        assert host.server.livechat_get_room(SYSTEM, room["id"])["open"]
    mine = [r for r in _records(home) if r.get("action") == "livechat.create_room"]
    assert [(r["kind"], r.get("ok")) for r in mine] == [("decision", None), ("outcome", True)]
