"""The harness's fake gate: grants, recorded calls, injected failures, plain data."""
import pytest
from harness_helpers import write_app

from sandbox.errors import Conflict, NotFound, PermissionDenied, QuotaExceeded, Timeout
from sandbox.harness import AppHarness, HarnessError

ALL = ("livechat.read", "users.read", "users.create", "roles.assign", "persistence",
       "messages.send", "messages.read", "http", "server.rest", "livechat.write",
       "livechat.agent-display")


@pytest.fixture
def h(tmp_path):
    return AppHarness.from_dir(write_app(tmp_path / "app", permissions=ALL))


def test_grants_default_to_what_the_manifest_asks(h):
    assert h.grants == frozenset(ALL)


def test_a_call_without_its_permission_is_denied_naming_it(tmp_path):
    h = AppHarness.from_dir(write_app(tmp_path, permissions=ALL),
                            grants=set(ALL) - {"users.create"})
    with pytest.raises(PermissionDenied, match=r"users\.create"):
        h.ctx.users.create("ext-a", "A", type="bot")
    assert h.calls == [("users.create", {"username": "ext-a", "name": "A", "type": "bot"})]
    assert h.errors == [("users.create", "permission_denied")]
    assert h.server.users_find_by_field("x", "y") == []
    assert len(h.server.users) == 1  # only the app user: nothing was created


def test_the_harness_never_grants_more_than_the_manifest_asks(tmp_path):
    app = write_app(tmp_path, permissions=("livechat.read",))
    with pytest.raises(HarnessError, match="not asked for"):
        AppHarness.from_dir(app, grants={"livechat.read", "users.create"})
    with pytest.raises(HarnessError, match="unknown permission"):
        AppHarness.from_dir(app, grants={"users.everything"})


def test_usernames_are_unique_case_insensitively(h):
    h.ctx.users.create("ext-ann", "Ann", type="bot")
    with pytest.raises(Conflict, match="already taken"):
        h.ctx.users.create("EXT-Ann", "Ann again", type="user")
    assert h.errors == [("users.create", "conflict")]


def test_created_users_are_marked_and_found_by_field(h):
    u = h.ctx.users.create("ext-b", "B", type="user", custom_fields={"externalId": "42"})
    assert u["created_by_app"] == "probe" and u["roles"] == ["user"]
    assert [x["id"] for x in h.ctx.users.find_by_field("externalId", "42")] == [u["id"]]
    assert h.ctx.users.find_by_field("externalId", "43") == []
    assert h.ctx.users.get_by_username("EXT-B")["id"] == u["id"]


def test_unknown_ids_are_not_found(h):
    with pytest.raises(NotFound):
        h.ctx.users.get("nope")
    with pytest.raises(NotFound):
        h.ctx.livechat.get_room("nope")
    with pytest.raises(NotFound):
        h.ctx.store.get("nothing")


def test_apps_may_create_only_user_and_bot_accounts(h):
    from sandbox.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        h.ctx.users.create("ext-c", "C", type="app")


def test_admin_class_roles_are_refused_whatever_the_grants(h):
    u = h.ctx.users.create("ext-d", "D", type="bot")
    with pytest.raises(PermissionDenied, match="admin"):
        h.ctx.roles.assign(u["id"], "admin")
    with pytest.raises(PermissionDenied):
        h.ctx.users.create("ext-e", "E", type="bot", roles=["Owner"])
    assert "admin" not in h.server.users_get(u["id"])["roles"]


def test_fail_next_injects_one_failure_after_the_permission_check(tmp_path):
    h = AppHarness.from_dir(write_app(tmp_path, permissions=ALL),
                            grants=set(ALL) - {"users.create"})
    h.fail_next("users.create", QuotaExceeded("full"))
    with pytest.raises(PermissionDenied):  # a missing grant still wins
        h.ctx.users.create("ext-f", "F", type="bot")
    h.grants = frozenset(ALL)
    with pytest.raises(QuotaExceeded, match="full"):
        h.ctx.users.create("ext-f", "F", type="bot")
    assert h.ctx.users.create("ext-f", "F", type="bot")["username"] == "ext-f"


def test_fail_next_queues_in_order_and_accepts_classes(h):
    h.fail_next("persistence.put", Timeout)
    h.fail_next("persistence.put", Conflict("second"))
    with pytest.raises(Timeout, match="injected"):
        h.ctx.store.put("k", 1)
    with pytest.raises(Conflict, match="second"):
        h.ctx.store.put("k", 1)
    h.ctx.store.put("k", 1)
    assert h.stored("k") == 1
    with pytest.raises(HarnessError):
        h.fail_next("users.fly", Timeout)


def test_set_quota_counts_successful_calls(h):
    h.set_quota("users.create", 2)
    h.ctx.users.create("ext-1", "1", type="bot")
    with pytest.raises(Conflict):
        h.ctx.users.create("ext-1", "1", type="bot")  # a failure uses no unit
    h.ctx.users.create("ext-2", "2", type="bot")
    with pytest.raises(QuotaExceeded):
        h.ctx.users.create("ext-3", "3", type="bot")


def test_results_are_copies_not_server_state(h):
    u = h.ctx.users.create("ext-g", "G", type="bot")
    u["roles"].append("admin")
    assert h.server.users_get(u["id"])["roles"] == ["bot"]


def test_arguments_must_be_plain_data(h):
    from sandbox.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="plain data"):
        h.ctx.store.put("k", {1, 2})


def test_persistence_associations(h):
    h.ctx.store.put("a", {"n": 1}, {"kind": "room", "id": "r1"})
    h.ctx.store.put("b", 2, {"kind": "room", "id": "r2"})
    h.ctx.store.put("c", 3, {"kind": "room", "id": "r1"})
    assert h.ctx.store.find({"kind": "room", "id": "r1"}) == [
        {"key": "a", "value": {"n": 1}}, {"key": "c", "value": 3}]
    h.ctx.store.delete("a")
    h.ctx.store.delete("a")  # deleting a missing key is not an error
    assert [r["key"] for r in h.ctx.store.find({"kind": "room", "id": "r1"})] == ["c"]


def test_persistence_find_refuses_what_the_host_could_not_send(h):
    """The host's reply budget (host/bridges/persistence.py FIND_REPLY_BYTES), repeated."""
    from sandbox.errors import InvalidArgument

    big = "x" * (64 * 1024 - 2)
    for i in range(20):
        h.ctx.store.put(f"k{i:02}", big, {"kind": "misc", "id": "a"})
    with pytest.raises(InvalidArgument, match="more than one reply carries"):
        h.ctx.store.find({"kind": "misc", "id": "a"})
    for i in range(10):
        h.ctx.store.delete(f"k{i:02}")
    assert len(h.ctx.store.find({"kind": "misc", "id": "a"})) == 10


def test_http_goes_to_the_responder_and_is_recorded(h):
    seen = []

    def crm(method, url, headers, body):
        seen.append((method, url, headers, body))
        return (202, "accepted", {"X-Id": "7"})

    h.http_responder = crm
    answer = h.ctx.http.post("https://crm.example/x", "{}", headers={"X-Api-Key": "k"})
    # Header names lower-cased, as the host gives them (test_harness_http_response.py).
    assert answer == {"status": 202, "headers": {"x-id": "7"}, "body": "accepted"}
    assert seen == [("POST", "https://crm.example/x", {"X-Api-Key": "k"}, "{}")]
    assert h.http_requests == [{"method": "POST", "url": "https://crm.example/x",
                                "headers": {"X-Api-Key": "k"}, "body": "{}"}]


def test_http_without_a_responder_or_outside_the_domains(h):
    with pytest.raises(HarnessError, match="http_responder"):
        h.ctx.http.get("https://crm.example/")
    h.http_responder = lambda *a: (200, "")
    h.http_domains = {"crm.example"}
    with pytest.raises(PermissionDenied, match=r"other\.example"):
        h.ctx.http.get("https://other.example/")
    assert h.ctx.http.get("https://crm.example/")["status"] == 200


def test_rest_goes_to_the_responder(h):
    with pytest.raises(HarnessError, match="rest_responder"):
        h.ctx.rest.call("GET", "/api/v1/info")
    h.rest_responder = lambda method, route, body: {"status": 200,
                                                    "body": {"route": route, "method": method}}
    assert h.ctx.rest.call("GET", "/api/v1/info") == {
        "status": 200, "body": {"route": "/api/v1/info", "method": "GET"}}


def test_persistence_checks_keys_associations_and_sizes(h):
    from sandbox.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="association"):
        h.ctx.store.put("k", 1, {"kind": "planet", "id": "earth"})
    with pytest.raises(InvalidArgument, match="key"):
        h.ctx.store.put("", 1)
    with pytest.raises(InvalidArgument, match="larger"):
        h.ctx.store.put("big", ["x" * 40_000, "y" * 40_000])
    assert h.server.store == {}


def test_storing_none_says_to_delete_not_missing_argument(h):
    from sandbox.errors import InvalidArgument

    h.ctx.store.put("k", 1)
    with pytest.raises(InvalidArgument, match=r"delete\(key\) removes a record"):
        h.ctx.store.put("k", None)  # was PermissionDenied: "missing required argument(s)"
    assert h.stored("k") == 1
