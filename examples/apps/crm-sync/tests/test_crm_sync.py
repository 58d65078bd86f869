"""CRM Sync, run through the app-author harness (no host needed)."""
import json
from pathlib import Path

import pytest

from sandbox.errors import PermissionDenied, Timeout
from sandbox.harness import AppHarness, HarnessError

APP_DIR = Path(__file__).resolve().parent.parent
CRM = "http://crm.localtest:8080/transcripts"
SETTINGS = {"crm_url": CRM, "api_key": "k-123"}


class Crm:
    """A programmable CRM: answers with `status`, keeps what it accepted."""

    def __init__(self, status=201):
        self.status = status
        self.accepted = []

    def __call__(self, method, url, headers, body):
        if 200 <= self.status < 300:
            self.accepted.append(json.loads(body))
        return (self.status, '{"ok": true}')


def closed_conversation(h):
    """A visitor talks to an agent, then the agent closes the room."""
    agent = h.add_user("hana", "Hana", agent=True)
    visitor = h.add_visitor(name="Vera", email="vera@example.com",
                            custom_fields={"plan": "gold"})
    room_id = h.start_room(visitor["id"])["room"]["id"]
    h.visitor_says(room_id, "My order is late")
    h.agent_says(agent["id"], room_id, "Sorry! It ships today.")
    return h.close_room(room_id)


def harness(**kw):
    h = AppHarness.from_dir(APP_DIR, settings=SETTINGS, **kw)
    h.http_responder = Crm()
    return h


def test_posts_the_transcript_with_the_api_key():
    h = harness()
    closed = closed_conversation(h)
    room_id = closed["room"]["id"]

    assert h.fire("livechat.room_closed", closed) == {"room": room_id, "delivered": True}

    [request] = h.http_requests
    assert (request["method"], request["url"]) == ("POST", CRM)
    assert request["headers"] == {"Content-Type": "application/json", "X-Api-Key": "k-123"}
    doc = json.loads(request["body"])
    assert doc["room_id"] == room_id
    assert doc["visitor"] == {"id": closed["room"]["visitor_id"], "name": "Vera",
                              "email": "vera@example.com", "custom_fields": {"plan": "gold"}}
    assert [(m["from"], m["name"], m["text"]) for m in doc["messages"]] == [
        ("visitor", "Vera", "My order is late"), ("user", "Hana", "Sorry! It ships today.")]
    assert doc["closed_by"]["type"] == "user"
    assert h.server.store == {}  # nothing to retry


def test_a_non_2xx_answer_is_kept_for_retry():
    h = harness()
    h.http_responder = Crm(status=503)
    closed = closed_conversation(h)
    room_id = closed["room"]["id"]

    assert h.fire("livechat.room_closed", closed)["delivered"] is False

    assert h.stored("retry:" + room_id) == {"room_id": room_id, "attempts": 1,
                                            "last_error": "HTTP 503", "gave_up": False}
    assert h.stored("retry-queue") == [room_id]


def test_a_timeout_is_kept_for_retry():
    h = harness()
    h.fail_next("http.request", Timeout("the CRM did not answer within 10 s"))
    closed = closed_conversation(h)
    h.fire("livechat.room_closed", closed)
    record = h.stored("retry:" + closed["room"]["id"])
    assert record["last_error"] == "timeout: the CRM did not answer within 10 s"


def test_queued_transcripts_are_retried_after_the_next_success():
    h = harness()
    crm = Crm(status=500)
    h.http_responder = crm
    first = closed_conversation(h)
    h.fire("livechat.room_closed", first)

    crm.status = 200
    visitor = h.add_visitor(name="Walt")
    second_id = h.start_room(visitor["id"])["room"]["id"]
    h.visitor_says(second_id, "Thanks")
    h.fire("livechat.room_closed", h.close_room(second_id, by_visitor=True))

    assert [d["room_id"] for d in crm.accepted] == [second_id, first["room"]["id"]]
    assert h.stored("retry-queue") == []
    with pytest.raises(KeyError):
        h.stored("retry:" + first["room"]["id"])


def test_gives_up_after_max_attempts():
    h = harness()
    h.http_responder = Crm(status=500)
    closed = closed_conversation(h)
    for _ in range(5):
        h.fire("livechat.room_closed", closed)
    record = h.stored("retry:" + closed["room"]["id"])
    assert record["attempts"] == 5 and record["gave_up"] is True


def test_a_domain_the_policy_refuses_is_recorded_and_raised():
    h = harness()
    h.http_domains = {"crm.localtest"}  # what the demo policy allows
    h.change_settings(crm_url="https://evil.example/steal")
    closed = closed_conversation(h)
    with pytest.raises(PermissionDenied, match=r"evil\.example"):
        h.fire("livechat.room_closed", closed)
    record = h.stored("retry:" + closed["room"]["id"])
    assert record["gave_up"] is True and record["last_error"].startswith("permission_denied")
    assert h.http_requests == []


def test_withheld_http_permission_is_a_permission_denied_naming_it():
    h = harness(grants={"livechat.read", "messages.read", "persistence"})
    with pytest.raises(PermissionDenied, match="'http'"):
        h.fire("livechat.room_closed", closed_conversation(h))


def test_settings_are_required():
    with pytest.raises(HarnessError, match="api_key"):
        AppHarness.from_dir(APP_DIR, settings={"crm_url": CRM})
