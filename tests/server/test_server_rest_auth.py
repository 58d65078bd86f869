"""Signing in as Rocket.Chat clients do, over real HTTP on loopback: password login, logout,
personal access tokens, admin-minted tokens, and deactivation revoking every token for good.
Then the user list (paged; other users' e-mail and custom fields only for managers) and
`/api/info`."""
from __future__ import annotations

import httpx
import pytest
from srvhelp import PASSWORD, rest_login, rest_user
from test_server_rest import base_url, client, svc  # noqa: F401 - fixtures

from host.server import SYSTEM, Caller, EmbeddedServer
from host.server.auth import FAILURE_WINDOW_S, MAX_FAILURES, MAX_TRACKED_NAMES, Failures
from host.server.limits import MAX_LIST
from host.server.personal_tokens import MAX_LOGIN_TOKENS, MAX_PERSONAL_TOKENS, mint, verify
from host.store import reading


def test_login_me_logout(client: httpx.Client, base_url: str) -> None:  # noqa: F811
    uid = rest_user(client, "alice")
    r = rest_login(base_url, "alice")
    assert r.status_code == 200
    doc = r.json()
    assert doc["status"] == "success" and doc["data"]["userId"] == uid
    assert doc["data"]["me"]["username"] == "alice"
    # by e-mail address too, any case, as Rocket.Chat allows
    assert rest_login(base_url, "ALICE@example.org").status_code == 200
    headers = {"X-User-Id": uid, "X-Auth-Token": doc["data"]["authToken"]}
    with httpx.Client(base_url=base_url, headers=headers) as me:
        assert me.get("/api/v1/me").json()["username"] == "alice"
        out = me.post("/api/v1/logout")
        assert out.json()["data"]["message"] == "You've been logged out!"
        assert me.get("/api/v1/me").status_code == 401  # that token is gone


@pytest.mark.parametrize(("user", "password"), [
    ("alice", "wrong password"), ("nobody", PASSWORD), ("alice", ""),
])
def test_a_wrong_name_or_password_is_one_and_the_same_401(
        client: httpx.Client, base_url: str, user: str, password: str) -> None:  # noqa: F811
    rest_user(client, "alice")
    r = rest_login(base_url, user, password)
    assert r.status_code == 401
    assert r.json() == {"status": "error", "error": "Unauthorized", "message": "Unauthorized"}


def test_failed_sign_ins_block_the_name(client: httpx.Client, base_url: str) -> None:  # noqa: F811
    """Online guessing: past the limit even the right password is refused for the window."""
    rest_user(client, "bob")
    for _ in range(MAX_FAILURES):
        assert rest_login(base_url, "bob", "guess guess").status_code == 401
    blocked = rest_login(base_url, "bob")
    assert blocked.status_code == 401
    assert blocked.json()["error"] == "error-login-blocked-for-user"
    assert rest_login(base_url, "bob2-unrelated").status_code == 401  # others are unaffected
    assert rest_login(base_url, "alice-not-made").json()["error"] == "Unauthorized"


def test_invented_names_never_evict_a_blocked_name() -> None:
    """The failure table is bounded (MAX_TRACKED_NAMES), but a name that is blocked is never
    the one forgotten: before, 10,000 failed sign-ins with invented names unblocked the victim
    within seconds and its password could be guessed again. When every remembered name is
    blocked, a new name is refused for the window rather than a block forgotten."""
    f = Failures()
    victim = "/srv/server.db\0admin"
    for _ in range(MAX_FAILURES):
        f.failed(victim, 1000.0)
    for i in range(MAX_TRACKED_NAMES + 50):
        f.failed(f"/srv/server.db\0nobody{i}", 1001.0)
    assert f.blocked(victim, 1002.0)
    assert not f.blocked(victim, 1000.0 + FAILURE_WINDOW_S + 1)  # the window still ends

    full = Failures()
    for i in range(MAX_TRACKED_NAMES):
        for _ in range(MAX_FAILURES):
            full.failed(f"n{i}", 1000.0 + i / MAX_TRACKED_NAMES)
    full.failed("newcomer", 1001.0)
    assert full.blocked("n0", 1001.0) and full.blocked(f"n{MAX_TRACKED_NAMES - 1}", 1001.0)
    assert full.blocked("newcomer", 1001.0) and full.blocked("anyone-else", 1001.0)
    later = 1000.0 + FAILURE_WINDOW_S + 0.5  # n0's block is over: its place can be taken
    assert not full.blocked("newcomer", later)
    full.failed("newcomer", later)
    assert not full.blocked("n0", later) and full.blocked(f"n{MAX_TRACKED_NAMES - 1}", later)


def test_password_hashes_are_salted_scrypt(client: httpx.Client, server: EmbeddedServer) -> None:  # noqa: F811
    a, b = rest_user(client, "carol"), rest_user(client, "dave")
    with reading(server.db.target) as c:
        rows = {r[0]: r[1] for r in c.execute("SELECT user_id, hash FROM user_passwords")}
    assert rows[a].startswith("scrypt$") and PASSWORD not in rows[a]
    assert rows[a] != rows[b]  # same password, different salt


def test_a_short_password_creates_nobody(client: httpx.Client, server: EmbeddedServer) -> None:  # noqa: F811
    r = client.post("/api/v1/users.create", json={"username": "eve", "name": "E",
                                                  "password": "short"})
    assert r.status_code == 400 and r.json()["errorType"] == "invalid-params"
    assert client.get("/api/v1/users.info", params={"username": "eve"}).status_code == 400


def test_personal_and_admin_minted_tokens(client: httpx.Client, base_url: str,  # noqa: F811
                                          server: EmbeddedServer) -> None:
    uid = rest_user(client, "frank")
    login = rest_login(base_url, "frank").json()["data"]
    with httpx.Client(base_url=base_url, headers={"X-User-Id": uid,
                                                  "X-Auth-Token": login["authToken"]}) as me:
        # an ordinary user holds no create-personal-access-tokens (Rocket.Chat: admins)
        pat = me.post("/api/v1/users.generatePersonalAccessToken", json={"tokenName": "ci"})
        assert pat.status_code == 400 and pat.json()["errorType"] == "not-authorized"
        # an ordinary user cannot mint a sign-in for someone else (Rocket.Chat: 400
        # error-not-authorized, its "Missing permission" answer)
        refused = me.post("/api/v1/users.createToken", json={"username": "frank"})
        assert refused.status_code == 400
        assert refused.json()["errorType"] == "error-not-authorized"
    minted = client.post("/api/v1/users.createToken", json={"username": "frank"}).json()
    for token in (minted["data"]["authToken"],):
        r = httpx.get(f"{base_url}/api/v1/me", headers={"X-User-Id": uid, "X-Auth-Token": token})
        assert r.status_code == 200


def test_personal_tokens_are_an_admins_one_per_name_and_few(
        client: httpx.Client, base_url: str) -> None:  # noqa: F811
    """users.generatePersonalAccessToken needs create-personal-access-tokens (admins, as
    Rocket.Chat's default): a signed-in livechat agent minted 120 never-expiring tokens under
    one name before. A name already used is refused as Rocket.Chat refuses it, and a user holds
    at most MAX_PERSONAL_TOKENS."""
    for name, roles in (("ivan", ["user", "livechat-agent"]), ("jill", ["user", "admin"])):
        rest_user(client, name, roles=roles)
    agent = rest_login(base_url, "ivan").json()["data"]
    r = httpx.post(f"{base_url}/api/v1/users.generatePersonalAccessToken",
                   json={"tokenName": "ci"}, headers={"X-User-Id": agent["userId"],
                                                      "X-Auth-Token": agent["authToken"]})
    assert r.status_code == 400 and r.json() == {
        "success": False, "error": "Not Authorized [not-authorized]",
        "errorType": "not-authorized"}
    admin = rest_login(base_url, "jill").json()["data"]
    with httpx.Client(base_url=base_url, headers={"X-User-Id": admin["userId"],
                                                  "X-Auth-Token": admin["authToken"]}) as me:
        def gen(name: str) -> httpx.Response:
            return me.post("/api/v1/users.generatePersonalAccessToken", json={"tokenName": name})

        assert gen("ci").status_code == 200
        dup = gen("ci")
        assert dup.status_code == 400 and dup.json()["errorType"] == "error-token-already-exists"
        for i in range(1, MAX_PERSONAL_TOKENS):
            assert gen(f"t{i}").status_code == 200
        over = gen("one-too-many")
        assert over.status_code == 400 and over.json()["errorType"] == "invalid-params"


def test_create_token_needs_the_workspace_secret_when_one_is_set(
        client: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """As Rocket.Chat 8+: with CREATE_TOKENS_FOR_USERS_SECRET set, users.createToken without
    that `secret` (or with another) is 400 error-not-authorized, even for an admin."""
    monkeypatch.setenv("CREATE_TOKENS_FOR_USERS_SECRET", "s3cret-value")
    uid = rest_user(client, "gus")
    for body in ({"userId": uid}, {"userId": uid, "secret": "wrong"}):
        bad = client.post("/api/v1/users.createToken", json=body)
        assert bad.status_code == 400 and bad.json() == {
            "success": False, "error": "Not authorized [error-not-authorized]",
            "errorType": "error-not-authorized"}
    ok = client.post("/api/v1/users.createToken", json={"userId": uid, "secret": "s3cret-value"})
    assert ok.status_code == 200 and ok.json()["data"]["userId"] == uid


def test_deactivation_revokes_every_token_for_good(client: httpx.Client, base_url: str) -> None:  # noqa: F811
    uid = rest_user(client, "gina")
    token = rest_login(base_url, "gina").json()["data"]["authToken"]
    headers = {"X-User-Id": uid, "X-Auth-Token": token}
    assert httpx.get(f"{base_url}/api/v1/me", headers=headers).status_code == 200
    client.post("/api/v1/users.setActiveStatus", json={"userId": uid, "activeStatus": False})
    assert rest_login(base_url, "gina").status_code == 401  # a deactivated user cannot sign in
    client.post("/api/v1/users.setActiveStatus", json={"userId": uid, "activeStatus": True})
    assert httpx.get(f"{base_url}/api/v1/me", headers=headers).status_code == 401
    assert rest_login(base_url, "gina").status_code == 200  # a new sign-in works again


def test_users_list_pages_and_hides_private_fields(client: httpx.Client, base_url: str,  # noqa: F811
                                                   server: EmbeddedServer) -> None:
    for i in range(5):
        rest_user(client, f"user{i}", customFields={"crmId": str(i)})
    full = client.get("/api/v1/users.list", params={"count": "2", "offset": "1"}).json()
    assert full["count"] == 2 and full["offset"] == 1 and full["total"] == 6  # + svc
    assert "emails" in full["users"][0]
    uid = server.users_get_by_username(SYSTEM, "user0")["id"]
    token = rest_login(base_url, "user0").json()["data"]["authToken"]
    with httpx.Client(base_url=base_url, headers={"X-User-Id": uid, "X-Auth-Token": token}) as c:
        plain = c.get("/api/v1/users.list", params={"count": "0",
                                                    "fields": '{"customFields": 1}'}).json()
    assert plain["total"] == 6 and len(plain["users"]) == 6
    others = [u for u in plain["users"] if u["_id"] != uid]
    assert len(others) == 5
    assert all("emails" not in u and "customFields" not in u for u in others)
    assert next(u for u in plain["users"] if u["_id"] == uid)["customFields"] == {"crmId": "0"}


def test_users_info_hides_another_users_private_fields_from_non_managers(
        client: httpx.Client, base_url: str, server: EmbeddedServer) -> None:  # noqa: F811
    """users.info shows a non-manager what users.list shows it of another user, no more (before,
    any signed-in agent read every user's e-mail addresses and custom fields there)."""
    boss = rest_user(client, "boss", customFields={"ssn": "123-45-6789"})
    agent = rest_user(client, "agent1", roles=["livechat-agent"])
    token = rest_login(base_url, "agent1").json()["data"]["authToken"]
    with httpx.Client(base_url=base_url, headers={"X-User-Id": agent,
                                                  "X-Auth-Token": token}) as c:
        for query in ({"username": "boss"}, {"userId": boss}):
            shown = c.get("/api/v1/users.info", params=query).json()["user"]
            assert shown["_id"] == boss and shown["username"] == "boss"
            assert "emails" not in shown and "customFields" not in shown, shown
        own = c.get("/api/v1/users.info", params={"userId": agent}).json()["user"]
    assert own["emails"] == [{"address": "agent1@example.org", "verified": False}]
    full = client.get("/api/v1/users.info", params={"userId": boss}).json()["user"]  # an admin
    assert full["customFields"] == {"ssn": "123-45-6789"}


def test_users_list_count_zero_is_capped_at_max_list(client: httpx.Client, base_url: str,  # noqa: F811
                                                     server: EmbeddedServer) -> None:
    """`count=0` pages at most MAX_LIST users (before, the whole table in one answer, to any
    signed-in user); `total` still says how many there are."""
    with server.db.write() as c:  # bulk rows, as users.create leaves them
        for i in range(MAX_LIST + 20):
            c.execute("INSERT INTO users (id, username, username_cf, name, type, active,"
                      " created_at) VALUES (?, ?, ?, ?, 'user', 1, 0)",
                      (f"id{i:06d}", f"u{i:06d}", f"u{i:06d}", "x"))
    page = client.get("/api/v1/users.list", params={"count": "0"}).json()
    assert page["total"] == MAX_LIST + 21 and page["count"] == len(page["users"]) == MAX_LIST
    rest = client.get("/api/v1/users.list", params={"count": "0", "offset": str(MAX_LIST)}).json()
    assert rest["count"] == 21


def test_api_info_outside_v1(base_url: str) -> None:  # noqa: F811
    r = httpx.get(f"{base_url}/api/info")
    assert r.status_code == 200 and r.json()["success"] is True and r.json()["version"]


def test_deactivating_an_apps_users_revokes_their_tokens_for_good(
        server: EmbeddedServer) -> None:
    """`uninstall --users deactivate` (`deactivate_users_created_by`): as one deactivation, the
    users' tokens must not work again when an operator reactivates one."""
    app = Caller(app_id="agent-sync", install_id="i-1", app_user_id=None)
    made = server.users_create(app, "crm.bot", "CRM Bot", "bot", op_id="op-crm-bot")
    token = mint(server.db, made["id"], "login", 0.0, kind="login")
    assert verify(server.db, made["id"], token, 0.0) == made["id"]
    assert server.deactivate_users_created_by("agent-sync") == 1
    server.users_set_active(SYSTEM, made["id"], True)
    assert verify(server.db, made["id"], token, 0.0) is None


def test_a_users_sign_ins_are_capped_the_oldest_ending_first(server: EmbeddedServer) -> None:
    """Every sign-in added a token row forever; now a user holds at most MAX_LOGIN_TOKENS
    sign-ins, and personal tokens are not touched by the cap."""
    uid = server.users_create(SYSTEM, "hal", "Hal", "user")["id"]
    personal = mint(server.db, uid, "ci", 0.0)
    tokens = [mint(server.db, uid, "login", float(i), kind="login")
              for i in range(MAX_LOGIN_TOKENS + 5)]
    alive = [t for t in tokens if verify(server.db, uid, t, 0.0) == uid]
    assert alive == tokens[5:]  # the newest MAX_LOGIN_TOKENS, the first five ended
    assert verify(server.db, uid, personal, 0.0) == uid
    (rows,) = server.db.conn().execute(
        "SELECT count(*) FROM personal_tokens WHERE user_id = ?", (uid,)).fetchone()
    assert rows == MAX_LOGIN_TOKENS + 1
