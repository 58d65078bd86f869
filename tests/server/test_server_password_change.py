"""What a password change and a loss of standing do to a user's sign-ins, over real HTTP on
loopback (and on both engines: the `server` fixture runs SQLite and PostgreSQL).

- A password set by an admin (`users.update`) revokes every REST token the user holds (login
  tokens, personal access tokens, admin-minted ones), as Rocket.Chat logs a user out on a
  password change; a user changing its own password keeps the one token making that request.
- The binding a console session keeps (`auth.sign_in_binding`) moves when the user loses an
  admin-class role, is deactivated or gets a new password, and stays moved when the role or the
  active flag comes back.
- Failed sign-ins count against the account, whichever of its names is typed (user name or
  e-mail address), and against the typed name when it names no account."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from srvhelp import PASSWORD, rest_login, rest_user
from test_server_rest import base_url, client, svc  # noqa: F401 - fixtures

from host.server import SYSTEM, EmbeddedServer, auth
from host.server.auth import MAX_FAILURES, set_password
from host.server.db import Database
from host.server.migrations import MIGRATIONS, _statements

NEW_PASSWORD = "a brand new password"


def _me(base_url: str, uid: str, token: str) -> int:  # noqa: F811
    return httpx.get(f"{base_url}/api/v1/me",
                     headers={"X-User-Id": uid, "X-Auth-Token": token}).status_code


def test_an_admin_password_reset_revokes_every_token_of_the_user(
        client: httpx.Client, base_url: str) -> None:  # noqa: F811
    uid = rest_user(client, "hank", roles=["user", "admin"])  # may mint a personal token
    login = rest_login(base_url, "hank").json()["data"]["authToken"]
    pat = httpx.post(f"{base_url}/api/v1/users.generatePersonalAccessToken",
                     json={"tokenName": "ci"},
                     headers={"X-User-Id": uid, "X-Auth-Token": login}).json()["token"]
    minted = client.post("/api/v1/users.createToken",
                         json={"username": "hank"}).json()["data"]["authToken"]
    assert [_me(base_url, uid, t) for t in (login, pat, minted)] == [200, 200, 200]
    r = client.post("/api/v1/users.update", json={"userId": uid,
                                                  "data": {"password": NEW_PASSWORD}})
    assert r.status_code == 200, r.text
    assert [_me(base_url, uid, t) for t in (login, pat, minted)] == [401, 401, 401]
    assert rest_login(base_url, "hank").status_code == 401
    fresh = rest_login(base_url, "hank", NEW_PASSWORD).json()["data"]["authToken"]
    assert _me(base_url, uid, fresh) == 200
    assert client.get("/api/v1/me").status_code == 200  # the admin who reset it is untouched


def test_changing_ones_own_password_keeps_only_the_token_in_use(
        client: httpx.Client, base_url: str) -> None:  # noqa: F811
    uid = rest_user(client, "root", roles=["admin"])
    in_use, other = (rest_login(base_url, "root").json()["data"]["authToken"] for _ in range(2))
    pat = httpx.post(f"{base_url}/api/v1/users.generatePersonalAccessToken",
                     json={"tokenName": "ci"},
                     headers={"X-User-Id": uid, "X-Auth-Token": other}).json()["token"]
    r = httpx.post(f"{base_url}/api/v1/users.update",
                   json={"userId": uid, "data": {"password": NEW_PASSWORD}},
                   headers={"X-User-Id": uid, "X-Auth-Token": in_use})
    assert r.status_code == 200, r.text
    assert _me(base_url, uid, in_use) == 200
    assert _me(base_url, uid, other) == 401 and _me(base_url, uid, pat) == 401


def test_the_sign_in_binding_moves_for_good_when_standing_is_lost(
        server: EmbeddedServer) -> None:
    u = server.users_create(SYSTEM, "opal", "Opal", "user", roles=["admin"])
    set_password(server.db, u["id"], PASSWORD)
    seen = [auth.sign_in_binding(server.db, u["id"])]
    assert seen[0] is not None
    server.roles_assign(SYSTEM, u["id"], "livechat-agent")
    server.roles_remove(SYSTEM, u["id"], "livechat-agent")
    assert auth.sign_in_binding(server.db, u["id"]) == seen[-1]  # an ordinary role: no loss
    for lose, restore in (
            (lambda: server.roles_remove(SYSTEM, u["id"], "admin"),
             lambda: server.roles_assign(SYSTEM, u["id"], "admin")),
            (lambda: server.users_set_active(SYSTEM, u["id"], False),
             lambda: server.users_set_active(SYSTEM, u["id"], True)),
            (lambda: server.users_deactivate(SYSTEM, u["id"]),
             lambda: server.users_set_active(SYSTEM, u["id"], True)),
            (lambda: set_password(server.db, u["id"], NEW_PASSWORD), lambda: None)):
        lose()
        restore()
        now = auth.sign_in_binding(server.db, u["id"])
        assert now is not None and now not in seen  # moved, and not back to an old one
        seen.append(now)
    assert auth.sign_in_binding(server.db, "noSuchUser") is None


def test_a_store_from_before_the_epoch_migrates_and_its_users_keep_their_passwords(
        tmp_path: Path) -> None:
    """A version-4 store (users and passwords already there) takes the sign-in epoch at zero,
    and its triggers hold from then on."""
    path = tmp_path / "server.db"
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1),"
              " version INTEGER NOT NULL)")
    for m in MIGRATIONS[:4]:
        for stmt in _statements(m):
            c.execute(stmt)
    c.execute("INSERT INTO roles VALUES ('admin', 1, 'Admin')")
    c.execute("INSERT INTO users (id, type, username, username_cf, name, created_at)"
              " VALUES ('u1', 'user', 'old', 'old', 'Old', 0)")
    c.execute("INSERT INTO user_roles VALUES ('u1', 'admin')")
    c.execute("INSERT INTO user_passwords VALUES ('u1', 'scrypt$record')")
    c.execute("INSERT INTO schema_version VALUES (1, 4)")
    c.close()
    db = Database(path)
    before = auth.sign_in_binding(db, "u1")
    assert before == "0\0scrypt$record"
    with db.write() as w:
        w.execute("DELETE FROM user_roles WHERE user_id = 'u1'")
    assert auth.sign_in_binding(db, "u1") == "1\0scrypt$record"
    db.close()


def test_failures_count_against_the_account_whichever_name_is_typed(
        client: httpx.Client, base_url: str) -> None:  # noqa: F811
    rest_user(client, "ivan")
    half = MAX_FAILURES // 2
    for i in range(half):
        assert rest_login(base_url, "ivan", f"guess {i}").status_code == 401
    for i in range(MAX_FAILURES - half):
        assert rest_login(base_url, "IVAN@example.org", f"guess {i}").status_code == 401
    for name in ("ivan", "ivan@example.org"):
        blocked = rest_login(base_url, name)  # the right password, through either name
        assert blocked.status_code == 401
        assert blocked.json()["error"] == "error-login-blocked-for-user", name


def test_an_unknown_name_is_counted_by_name_and_answered_as_a_known_one(
        client: httpx.Client, base_url: str) -> None:  # noqa: F811
    rest_user(client, "judy")
    known = [rest_login(base_url, "judy", f"guess {i}").json() for i in range(MAX_FAILURES)]
    unknown = [rest_login(base_url, "nobody", f"guess {i}").json() for i in range(MAX_FAILURES)]
    assert known == unknown  # the same answers, each a plain "Unauthorized"
    assert rest_login(base_url, "nobody").json()["error"] == "error-login-blocked-for-user"
    assert rest_login(base_url, "judy").json()["error"] == "error-login-blocked-for-user"
    assert rest_login(base_url, "somebody-else").json()["error"] == "Unauthorized"
