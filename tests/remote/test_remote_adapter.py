"""`RemoteServer` against the stand-in process: each action reaches the workspace through its
documented REST call, ownership and seats are Stockade's own record, rule 10 holds behind the
gate, and rule 9 holds across the network (a write in flight is settled by reading back)."""
from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rchelp import Standin, remote

from host.clock import SystemClock
from host.home import Home
from host.ledger.ledger import Ledger
from host.server.errors import Conflict, Forbidden, InvalidArgument, Unavailable
from host.server.principals import SYSTEM, Caller
from host.server.remote.server import RemoteServer
from host.server.shapes import User

_n = itertools.count()


def _name(stem: str) -> str:
    return f"{stem}-{os.getpid()}-{next(_n)}"


@pytest.fixture()
def rs(clean: Standin, tmp_path: Path) -> RemoteServer:
    return remote(Home(tmp_path / "host").ensure(), clean)


def _app(rs: RemoteServer, app_id: str) -> Caller:
    user = rs.create_app_user(app_id, app_id.title())
    return Caller(app_id, f"in-{app_id}", user["id"])


def test_users_roles_agents_and_fields_reach_the_workspace(rs: RemoteServer,
                                                           clean: Standin) -> None:
    app = _app(rs, _name("a"))
    name = _name("u")
    u = rs.users_create(app, name, "U", "bot", custom_fields={"ext": name}, op_id=_name("op"))
    # The workspace has it (read back with the service account's own REST call)...
    assert clean.admin("GET", "users.info", params={"userId": u["id"]})["user"]["username"] == name
    # ...and Stockade knows who made it: Rocket.Chat keeps no such record.
    assert u["created_by_app"] == app.app_id and rs.user_created_by(u["id"]) == app.app_id
    assert [x["id"] for x in rs.users_find_by_field(app, "ext", name)] == [u["id"]]
    # the workspace's users.list shows custom fields only when `fields` asks (Rocket.Chat's
    # default projection omits them)
    plain = clean.admin("GET", "users.list", params={"count": "100"})["users"]
    assert plain and not any("customFields" in d for d in plain)
    asked = clean.admin("GET", "users.list", params={"count": "100",
                                                    "fields": '{"customFields": 1}'})["users"]
    assert {"ext": name} in [d.get("customFields") for d in asked]
    assert "bot" in rs.roles_assign(app, u["id"], "bot", op_id=_name("op"))["roles"]
    assert rs.livechat_add_agent(app, u["id"], op_id=_name("op"))["user_id"] == u["id"]
    assert rs.livechat_set_agent_status(app, u["id"], "available",
                                        op_id=_name("op"))["status"] == "available"
    fields = rs.users_set_custom_fields(app, u["id"], {"ext": None, "k": "v"},
                                        op_id=_name("op"))["custom_fields"]
    assert fields == {"k": "v"}
    seats = rs.seats_in_use([])
    assert rs.users_deactivate(app, u["id"], op_id=_name("op"))["active"] is False
    assert rs.seats_in_use([]) == seats - 1


def test_an_app_never_touches_an_admin_class_role_even_behind_the_gate(
        rs: RemoteServer) -> None:
    app = _app(rs, _name("a"))
    u = rs.users_create(app, _name("u"), "U", "user", op_id=_name("op"))
    before = rs.client.attempts
    for role in ("admin", "livechat-manager"):
        with pytest.raises(Forbidden, match="privileged role"):
            rs.roles_assign(app, u["id"], role, op_id=_name("op"))
        with pytest.raises(Forbidden):
            rs.users_create(app, _name("u"), "U", "user", roles=[role], op_id=_name("op"))
    # one users.info look-up per roles_assign at most; no role change was sent
    assert rs.client.attempts - before <= 2
    assert "admin" not in rs.users_get(SYSTEM, u["id"])["roles"]


def test_a_custom_role_holding_workspace_powers_is_privileged_unlisted(
        rs: RemoteServer, clean: Standin) -> None:
    """A role the operator made on the workspace and gave admin's powers, never named in
    `privileged_roles`: the workspace's permission table says what it carries, so an app can
    neither grant it nor create a user with it. An ordinary role still goes (the control)."""
    role = _name("ops-boss")
    with sqlite3.connect(clean.home.server_db) as c:  # the stand-in's own store
        c.execute("INSERT INTO roles (name, privileged, description) "
                  "VALUES (?, 1, 'custom admin')", (role,))
    app = _app(rs, _name("a"))
    u = rs.users_create(app, _name("u"), "U", "user", op_id=_name("op"))
    assert rs.is_privileged(role) and not rs.is_privileged("bot")
    with pytest.raises(Forbidden, match="privileged role"):
        rs.roles_assign(app, u["id"], role, op_id=_name("op"))
    with pytest.raises(Forbidden, match="privileged role"):
        rs.users_create(app, _name("u"), "U", "user", roles=[role], op_id=_name("op"))
    assert role not in rs.users_get(SYSTEM, u["id"])["roles"]
    assert {r["name"]: r["privileged"] for r in rs.roles_list()}[role] is True
    assert "bot" in rs.roles_assign(app, u["id"], "bot", op_id=_name("op"))["roles"]


def test_a_permission_table_it_cannot_read_refuses_unlisted_roles(
        rs: RemoteServer, clean: Standin) -> None:
    """Whether a role carries power is read from the workspace; unread, no role is taken as
    ordinary (an Unavailable, never a grant), while the fixed list needs no request."""
    clean.fault("permissions.listAll", "status", 503, times=50)
    with pytest.raises(Unavailable):
        rs.is_privileged("some-custom-role")
    assert rs.is_privileged("admin")  # the fixed list needs no request


def test_an_app_sends_only_as_users_it_created(rs: RemoteServer) -> None:
    a, b = _app(rs, _name("a")), _app(rs, _name("b"))
    theirs = rs.users_create(b, _name("u"), "U", "user", op_id=_name("op"))
    with pytest.raises(Forbidden, match="only as users it created"):
        rs.messages_send_as_user(a, "room-x", theirs["id"], "hi", op_id=_name("op"))


def test_an_app_never_takes_a_name_reserved_for_apps_own_users(rs: RemoteServer) -> None:
    """On a workspace as on the embedded server, `app.<id>` is each install's own user: an app
    that made `app.<another app>` would hold the name that app's host adopts as its own user."""
    a = _app(rs, _name("a"))
    for name in (f"app.{_name('other')}", f"APP.{_name('other')}"):
        with pytest.raises(InvalidArgument, match="reserved"):
            rs.users_create(a, name, "U", "bot", op_id=_name("op"))


def test_an_app_user_name_a_person_holds_is_never_taken_over(rs: RemoteServer, clean: Standin,
                                                             tmp_path: Path) -> None:
    """An app's own user on a workspace is `app.<id>`; one a Stockade home made before is
    adopted by the next (a reinstall, another home). A person who holds the name (registered
    it, or an admin made it) is never adopted: the app would then speak, serve rooms and act on
    REST routes as that person, whose password still works."""
    app_id = _name("squat")
    rs.post("users.create", {"username": f"app.{app_id}", "name": "A Person", "roles": ["user"],
                             "joinDefaultChannels": False, "sendWelcomeEmail": False,
                             "verified": True, "requirePasswordChange": False},
            idempotent=False)
    with pytest.raises(Conflict, match="not an app user"):
        rs.create_app_user(app_id, "Squat")
    assert rs.owned.app_user(app_id) is None
    made = rs.create_app_user(_name("mine"), "Mine")  # an earlier home's app user ...
    other = remote(Home(tmp_path / "other").ensure(), clean)
    app = made["username"].removeprefix("app.")
    assert other.create_app_user(app, "Mine")["id"] == made["id"]  # ... is adopted


def test_seats_count_admitted_creations_not_yet_applied(rs: RemoteServer) -> None:
    base = rs.seats_in_use([])
    assert rs.seats_in_use(["op-pending-1", "op-pending-2"]) == base + 2
    app = _app(rs, _name("a"))
    op = _name("op")
    rs.users_create(app, _name("u"), "U", "user", op_id=op)
    assert rs.seats_in_use([op]) == base + 1  # applied: counted once, as a user


_DRIVER = """
import sys
from pathlib import Path
from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.server.principals import Caller
from host.server.remote import config
home = Home(Path(sys.argv[1]))
remote = config.open_remote(home, SystemClock())
ledger = Ledger(home.host_db, SystemClock())
app = Caller("crashy", "in-crashy", None)
# What the gate does: the decision durable first (rule 9), then the remote call.
ledger.admit(AuditRecord(kind="decision", allowed=True, code="allow", app_id="crashy",
             install_id="in-crashy", action="users.create", op_id=sys.argv[2], write=True),
             [], None, None, None)
print("admitted", flush=True)
remote.users_create(app, sys.argv[3], "Crash", "user", op_id=sys.argv[2])
"""


def test_a_host_killed_between_decision_and_answer_is_settled_from_the_workspace(
        clean: Standin, tmp_path: Path) -> None:
    """SIGKILL while the workspace holds back the answer to an applied users.create: the intent
    is pending; the next start reads the workspace (does the username exist now?) and settles
    it as applied, with the user's ownership and seat recorded."""
    from host.runtime import Host

    home = Home(tmp_path / "host").ensure()
    rs = remote(home, clean)
    op, username = _name("op"), _name("crash")
    clean.fault("users.create", "delay-after", 30.0, times=1)
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(home.root), op, username],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"admitted"
    deadline = time.monotonic() + 20
    while rs.owned.op(op) is None or not _exists(clean, username):
        assert time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert rs.owned.op(op) is not None and rs.owned.op(op)[1] == "pending"  # type: ignore[index]
    ledger = Ledger(home.host_db, SystemClock())
    assert [i.op_id for i in ledger.pending_intents()] == [op]
    host = Host(home, server=rs)
    try:
        assert host.reconcile() == 1
    finally:
        host.ledger.close()
    assert ledger.pending_intents() == []
    uid = clean.admin("GET", "users.info", params={"username": username})["user"]["_id"]
    assert rs.user_created_by(uid) == "crashy"  # ownership recorded by the read-back
    assert rs.users_count_active_app_created() >= 1
    last = ledger.audit.tail(1)[0].body
    assert last["op_id"] == op and last["ok"] is True and last["reconciled"] is True


def test_a_write_that_never_left_is_settled_as_not_applied(clean: Standin,
                                                           tmp_path: Path) -> None:
    """Killed after the decision, before the adapter recorded the remote write: nothing was
    sent, so the intent settles as not applied and its units come back."""
    home = Home(tmp_path / "host").ensure()
    rs = remote(home, clean)
    assert rs.was_applied("op-that-never-left") is False


def test_an_unanswered_write_is_typed_and_stays_pending_when_the_workspace_is_down(
        tmp_path: Path) -> None:
    s = Standin(tmp_path / "s").start()
    home = Home(tmp_path / "host").ensure()
    rs = remote(home, s)
    app = Caller("down", "in-down", None)
    s.fault("users.create", "status", 502, times=1)
    op = _name("op")
    with pytest.raises(Unavailable) as err:
        rs.users_create(app, _name("u"), "U", "user", op_id=op)
    assert err.value.outcome_unknown
    assert rs.owned.op(op)[1] == "pending"  # type: ignore[index]
    s.stop()
    with pytest.raises(Unavailable):
        rs.was_applied(op)  # cannot be answered now: stays pending for the next start
    assert rs.owned.op(op)[1] == "pending"  # type: ignore[index]


def _exists(s: Standin, username: str) -> bool:
    return bool(s.admin("GET", "users.info", params={"username": username}).get("success"))


def _served_room(rs: RemoteServer, clean: Standin) -> tuple[Caller, User, str]:
    """An app, an agent it created (available, in a department of its own) and a visitor's room
    routed to that agent on the workspace."""
    import httpx

    app = _app(rs, _name("a"))
    agent = rs.users_create(app, _name("ag"), "Ag", "user", op_id=_name("op"))
    rs.livechat_add_agent(app, agent["id"], op_id=_name("op"))
    rs.livechat_set_agent_status(app, agent["id"], "available", op_id=_name("op"))
    dep = clean.admin("POST", "livechat/department", json={
        "department": {"name": _name("dep")}, "agents": [{"agentId": agent["id"]}]})
    token = _name("visitor-token-0123")
    httpx.post(f"{clean.url}/api/v1/livechat/visitor", json={"visitor": {"token": token}})
    rid = httpx.get(f"{clean.url}/api/v1/livechat/room", params={
        "token": token, "department": dep["department"]["_id"]}).json()["room"]["_id"]
    return app, agent, str(rid)


def test_a_user_sign_in_the_workspace_revoked_is_minted_again(rs: RemoteServer,
                                                              clean: Standin) -> None:
    """Deactivating a user deletes its tokens on the workspace: the next message the app sends
    as that user mints a new sign-in instead of failing."""
    app, agent, rid = _served_room(rs, clean)
    assert rs.messages_send_as_user(app, rid, agent["id"], "one", op_id=_name("op"))["text"] \
        == "one"
    for active in (False, True):  # the workspace drops the user's tokens
        clean.admin("POST", "users.setActiveStatus", json={"userId": agent["id"],
                                                           "activeStatus": active})
    sent = rs.messages_send_as_user(app, rid, agent["id"], "two", op_id=_name("op"))
    assert sent["text"] == "two" and sent["sender"]["id"] == agent["id"]


def test_host_restarts_do_not_pile_sign_ins_up_on_the_workspace(clean: Standin,
                                                                tmp_path: Path) -> None:
    """Each host process mints a sign-in (users.createToken) to send as an app's user; a stop
    logs it out, so five restarts leave the user no login token on the workspace."""
    import sqlite3

    home = Home(tmp_path / "host").ensure()
    rs = remote(home, clean)
    app, agent, rid = _served_room(rs, clean)

    def login_tokens() -> int:
        with sqlite3.connect(clean.home.server_db) as db:
            return int(db.execute("SELECT count(*) FROM personal_tokens WHERE user_id = ? AND "
                                  "kind = 'login'", (agent["id"],)).fetchone()[0])

    for i in range(5):
        if i:
            rs = remote(home, clean)  # the next host process
        rs.messages_send_as_user(app, rid, agent["id"], f"hello {i}", op_id=_name("op"))
        assert login_tokens() == 1
        rs.close()
    assert login_tokens() == 0


def test_a_user_deactivated_by_hand_on_the_workspace_frees_its_seat(rs: RemoteServer,
                                                                    clean: Standin) -> None:
    """Rocket.Chat bills active users: an operator who deactivates an app-created user on the
    workspace itself (not through Stockade) frees its seat at the host's next read-back, and
    one reactivated there holds a seat again."""
    app = _app(rs, _name("a"))
    made = [rs.users_create(app, _name("u"), "U", "user", op_id=_name("op")) for _ in range(2)]
    assert rs.users_count_active_app_created() == 2
    clean.admin("POST", "users.setActiveStatus", json={"userId": made[0]["id"],
                                                       "activeStatus": False})
    assert rs.users_count_active_app_created() == 2  # nothing told Stockade yet
    rs.checkpoint()  # the host's upkeep: its first pass reads the seats back
    assert rs.users_count_active_app_created() == 1
    assert rs.seats_in_use([]) == 1
    clean.admin("POST", "users.setActiveStatus", json={"userId": made[0]["id"],
                                                       "activeStatus": True})
    assert rs.sync_seats() == 1 and rs.users_count_active_app_created() == 2
    assert rs.sync_seats() == 0  # nothing changed since
    # walked in batches: a batch of one still reaches every user over passes
    clean.admin("POST", "users.setActiveStatus", json={"userId": made[1]["id"],
                                                       "activeStatus": False})
    changed = sum(rs.sync_seats(batch=1) for _ in range(3))
    assert changed == 1 and rs.users_count_active_app_created() == 1


def test_an_app_given_email_is_never_sent_as_verified(rs: RemoteServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Rocket.Chat's OAuth sign-in merges a person's account onto a user holding their address
    as verified: an app that made a user with a person's e-mail, sent as verified, would get
    that person's sign-in (and the app acts as users it created). The stand-in ignores the
    flag, so the body on the wire is what this reads."""
    sent: list[tuple[str, dict[str, object]]] = []
    real_post = rs.post

    def spying(path: str, body: dict[str, object], **kw: object) -> object:
        sent.append((path, body))
        return real_post(path, body, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(rs, "post", spying)
    app = _app(rs, _name("a"))
    rs.users_create(app, _name("u"), "U", "user", email=f"{_name('ceo')}@corp.example",
                    op_id=_name("op"))
    creates = [b for p, b in sent if p == "users.create" and "email" in b]
    assert creates and all(b.get("verified") is False for b in creates)
