"""The host's event depth limit holds through a remote Rocket.Chat workspace.

A workspace's webhooks carry no Stockade depth: two apps answering each other's `message.sent`
through a workspace looped until their quotas ran out (each answer came back by webhook as an
event of depth 0). The adapter now chooses the `_id` of a message an app sends while it handles
an event, records id -> cause in memory before the POST, and the receiver emits that message's
event with the recorded cause, so the host's `MAX_EVENT_DEPTH` stops the loop. Ids a person or
a webhook names carry no depth.

Real stand-in workspace process, real webhooks over loopback HTTP, real SQLite. The two apps
are played by a thread that keeps the host's own rules (`host.hostevents.HostEvents.dispatch`:
an event deeper than MAX_EVENT_DEPTH reaches no app; `AppRunner._run`: an app's writes while it
handles an event of depth d are made under `Cause(d + 1, app)`).
"""
from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hookhelp import Rig

from host.server.errors import Unavailable
from host.server.events import (
    MAX_EVENT_DEPTH,
    MESSAGE_SENT,
    NO_CAUSE,
    Cause,
    emitting_cause,
    writing,
)
from host.server.principals import Caller
from host.server.remote.client import DEADLINE_S as CLIENT_DEADLINE_S
from host.server.remote.sentcauses import MAX_SENT_CAUSES, SENT_CAUSE_KEEP_S, SentCauses

_seq = itertools.count()
# The loop's stand-in for the apps' quotas: before the fix the ping-pong ran to it.
QUOTA = 30


def _name(stem: str) -> str:
    return f"{stem}-{next(_seq)}-{int(time.time() * 1000) % 10**8}"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = Rig(tmp_path_factory.mktemp("depth")).start()
    try:
        yield r
    finally:
        r.stop()


def _two_apps(rig: Rig) -> tuple[str, str, tuple[Caller, str], tuple[Caller, str]]:
    """A visitor's room served by app A's agent user, and app B's user a livechat manager (who
    may speak in any room): (room, visitor token, (A, its user), (B, its user))."""
    rs, s = rig.rs, rig.standin
    a = Caller(_name("app-a"), _name("in-a"), None)
    b = Caller(_name("app-b"), _name("in-b"), None)
    ua = rs.users_create(a, _name("ua"), "A", "user", op_id=_name("op"))["id"]
    rs.livechat_add_agent(a, ua, op_id=_name("op"))
    rs.livechat_set_agent_status(a, ua, "available", op_id=_name("op"))
    ub_name = _name("ub")
    ub = rs.users_create(b, ub_name, "B", "user", op_id=_name("op"))["id"]
    assert s.admin("POST", "livechat/users/manager", json={"username": ub_name})["success"]
    dep = s.admin("POST", "livechat/department", json={
        "department": {"name": _name("dep")}, "agents": [{"agentId": ua}]})
    token = _name("visitor-token-0123")
    httpx.post(f"{s.url}/api/v1/livechat/visitor", json={"visitor": {"token": token}})
    rid = httpx.get(f"{s.url}/api/v1/livechat/room", params={
        "token": token, "department": dep["department"]["_id"]}).json()["room"]["_id"]
    return str(rid), token, (a, ua), (b, ub)


class PingPong:
    """Apps A and B, each answering every message in the room that is not its own (A the
    visitor's too), under the host's depth rule; at most QUOTA answers in all."""

    def __init__(self, rig: Rig, rid: str, a: tuple[Caller, str], b: tuple[Caller, str]):
        self.rig, self.rid, self.a, self.b = rig, rid, a, b
        self.inbox: queue.Queue[tuple[dict[str, Any], Cause] | None] = queue.Queue()
        self.sent = 0
        self.stopped: list[Cause] = []
        self.done = threading.Event()
        self._unsub = rig.rs.subscribe(self._event)
        self._thread = threading.Thread(target=self._apps, daemon=True)
        self._thread.start()

    def _event(self, name: str, payload: dict[str, Any]) -> None:
        if name == MESSAGE_SENT and payload["room"]["id"] == self.rid:
            self.inbox.put((payload["message"], emitting_cause()))

    def _apps(self) -> None:
        while (item := self.inbox.get()) is not None:
            msg, cause = item
            if cause.depth > MAX_EVENT_DEPTH:  # the host's dispatch: reaches no app
                self.stopped.append(cause)
                self.done.set()
                continue
            app, user = self.b if msg["sender"]["id"] == self.a[1] else self.a
            if self.sent >= QUOTA:
                self.done.set()  # the quota ran out: the loop's only bound before
                continue
            self.sent += 1
            with writing(Cause(cause.depth + 1, app.app_id, app.install_id)):
                self.rig.rs.messages_send_as_user(app, self.rid, user, f"re {self.sent}",
                                                  op_id=_name("op"))

    def stop(self) -> None:
        self._unsub()
        self.inbox.put(None)
        self._thread.join(30)


def test_two_apps_answering_each_other_through_the_workspace_stop_at_the_depth_limit(
        rig: Rig) -> None:
    """Failed before: every answer came back by webhook at depth 0, and the ping-pong ran to
    the quota (30 answers for one visitor message)."""
    rid, token, a, b = _two_apps(rig)
    rig.settle()
    game = PingPong(rig, rid, a, b)
    try:
        httpx.post(f"{rig.standin.url}/api/v1/livechat/message",
                   json={"token": token, "rid": rid, "msg": "hello"})
        assert game.done.wait(60)  # a guard against a hang, deciding nothing
        rig.settle()
    finally:
        game.stop()
    # The visitor's message is depth 0; answers 1..9 are made at depths 1..9; the event of the
    # ninth is deeper than MAX_EVENT_DEPTH and reaches neither app.
    assert game.sent == MAX_EVENT_DEPTH + 1 < QUOTA
    assert len(game.stopped) == 1
    last = game.stopped[0]
    assert last.depth == MAX_EVENT_DEPTH + 1
    assert last.app_id == (a if MAX_EVENT_DEPTH % 2 == 0 else b)[0].app_id
    assert len(rig.rs.sent) == 0  # each record taken by its webhook's event


def test_the_depth_holds_when_the_webhook_comes_before_the_posts_answer(rig: Rig) -> None:
    """The workspace applies the message and sends its webhook while the POST's answer is held
    back past the client's deadline (the stand-in's delay-after fault: the host never reads an
    answer, so the webhook comes first whatever the load): the event carries the recorded
    cause and the sending app, though nothing on disk names the message. Failed before: depth 0
    and no app (the id was known only from the answer)."""
    rid, _token, (a, ua), _b = _two_apps(rig)
    rig.settle()
    seen: list[tuple[dict[str, Any], Cause, bool]] = []
    got = threading.Event()
    answered = threading.Event()

    def take(name: str, payload: dict[str, Any]) -> None:
        if name == MESSAGE_SENT and payload["room"]["id"] == rid:
            seen.append((payload["message"], emitting_cause(), answered.is_set()))
            got.set()

    unsub = rig.rs.subscribe(take)
    cause = Cause(3, a.app_id, a.install_id)
    lost: list[Unavailable] = []

    def send() -> None:
        with writing(cause):
            try:
                rig.rs.messages_send_as_user(a, rid, ua, "late answer", op_id=_name("op"))
            except Unavailable as exc:
                lost.append(exc)
                return
        answered.set()

    # Past the client's deadline (CLIENT_DEADLINE_S): the answer is lost, the message applied.
    rig.standin.fault("chat.sendMessage", "delay-after", CLIENT_DEADLINE_S + 1.0, times=1)
    sender = threading.Thread(target=send, daemon=True)
    try:
        sender.start()
        assert got.wait(30)
        sender.join(30)
        rig.settle()
    finally:
        unsub()
        rig.standin.clear_faults()
    assert len(seen) == 1
    msg, emitted, after_answer = seen[0]
    assert not after_answer and len(lost) == 1 and lost[0].outcome_unknown
    assert msg["text"] == "late answer"
    assert emitted == cause
    assert msg["app_id"] == a.app_id


def test_an_id_the_host_did_not_choose_carries_no_depth(rig: Rig) -> None:
    """A person's message with an id of their own choosing, and a signed webhook naming it, are
    depth 0; the id the host chose for an app's message cannot be taken by anyone again (400),
    and a record is taken only in the room it was made for."""
    rid, _token, (a, ua), _b = _two_apps(rig)
    rig.settle()
    causes: list[tuple[str, Cause]] = []

    def take(name: str, payload: dict[str, Any]) -> None:
        if name == MESSAGE_SENT and payload["room"]["id"] == rid:
            causes.append((payload["message"]["id"], emitting_cause()))

    unsub = rig.rs.subscribe(take)
    try:
        with writing(Cause(5, a.app_id, a.install_id)):
            mine = rig.rs.messages_send_as_user(a, rid, ua, "from the app", op_id=_name("op"))
        rig.settle()
        # The workspace's admin, speaking with an id it chose, and then the app's id again.
        own = rig.standin.admin("POST", "chat.sendMessage", json={
            "message": {"_id": "PersonChosenId12345", "rid": rid, "msg": "a person"}})
        assert own["success"] and own["message"]["_id"] == "PersonChosenId12345"
        again = rig.standin.admin("POST", "chat.sendMessage", json={
            "message": {"_id": mine["id"], "rid": rid, "msg": "the app's id again"}})
        assert again["success"] is False
        bad = rig.standin.admin("POST", "chat.sendMessage", json={
            "message": {"_id": "no\nid", "rid": rid, "msg": "x"}})
        assert bad["success"] is False
        rig.settle()
    finally:
        unsub()
    assert dict(causes) == {mine["id"]: Cause(5, a.app_id, a.install_id),
                            "PersonChosenId12345": NO_CAUSE}
    records = SentCauses()
    records.remember("chosen-id", Cause(2, "x", "in-x"), "room-1", 0.0)
    assert records.take("chosen-id", "room-2", 1.0) is None  # another room's message
    assert records.take("chosen-id", "room-1", 1.0) == Cause(2, "x", "in-x")
    assert records.take("chosen-id", "room-1", 1.0) is None  # once


def test_the_record_of_sent_messages_is_bounded_in_size_and_age() -> None:
    records = SentCauses()
    cause = Cause(1, "app", "in-app")
    for i in range(MAX_SENT_CAUSES + 5):
        records.remember(f"m{i}", cause, "room", 100.0)
    assert len(records) == MAX_SENT_CAUSES
    assert records.peek("m0", 100.0) is None and records.peek("m4", 100.0) is None
    assert records.peek("m5", 100.0) is not None  # the oldest went first
    assert records.take(f"m{MAX_SENT_CAUSES + 4}", "room", 100.0) == cause
    assert records.peek("m5", 100.0 + SENT_CAUSE_KEEP_S) is not None  # not yet too old
    assert records.peek("m5", 100.0 + SENT_CAUSE_KEEP_S + 1) is None
    assert len(records) == 0
