"""Signed webhooks shaped by a hostile workspace admin (or Rocket.Chat's own "Send Test"), against
a fake workspace that answers as Rocket.Chat does (`rcfake.py`): a room that is not a livechat
room raises no event, and an entry that can never be processed does not hold up the inbox; and
bodies from a caller on the network, signed or not, that would hold the host's connections."""
from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from rcfake import Answer, FakeWorkspace, remote_on
from rchelp import SECRET

from host.server.errors import Unavailable
from host.server.listen import tcp_listener
from host.server.remote import receiver, webhook
from host.server.remote.owned import DELIVERED_KEEP_S
from host.server.remote.receiver import MAX_BODY_BYTES, PATH, WebhookReceiver

# rooms.info of a room the service account may not see: `API.v1.failure('not-allowed',
# 'Not Allowed')` in Rocket.Chat's rooms.ts (no errorType this client knows).
NOT_ALLOWED: Answer = (400, {"success": False, "error": "not-allowed", "errorType": "Not Allowed"})
LIVECHAT = {"_id": "L1", "t": "l", "open": True, "v": {"_id": "V1"}}
CLOSED = {"_id": "LC", "t": "l", "open": False, "v": {"_id": "V1"}}
CHANNEL = {"_id": "GENERAL", "t": "c", "name": "general"}  # a public channel: no `open`, no `v`


def _workspace(visitor_down: int = 0) -> FakeWorkspace:
    """`visitor_down`: how many visitors.info requests answer 503 first."""
    down = [visitor_down]

    def info(q: dict[str, str], _b: Any) -> Answer:
        doc = {"L1": LIVECHAT, "LC": CLOSED, "GENERAL": CHANNEL}.get(q.get("roomId", ""))
        return (200, {"room": doc, "success": True}) if doc else NOT_ALLOWED

    def visitor(q: dict[str, str], _b: Any) -> Answer:
        if down[0] > 0:
            down[0] -= 1
            return 503, {"success": False, "error": "down"}
        return 200, {"visitor": {"_id": q.get("visitorId"), "token": "t", "name": "V"},
                     "success": True}
    def message(q: dict[str, str], _b: Any) -> Answer:
        age = {"M-NEW": 60.0, "M-OLD": DELIVERED_KEEP_S + 3600.0}.get(q.get("msgId", ""))
        if age is None:
            return 400, {"success": False, "error": "invalid-params"}
        at = datetime.fromtimestamp(time.time() - age, UTC).isoformat().replace("+00:00", "Z")
        return 200, {"message": {"_id": q["msgId"], "rid": "L1", "msg": "hi", "ts": at,
                                 "u": {"_id": "V1", "username": "v", "type": "visitor"}},
                     "success": True}
    return FakeWorkspace({"GET rooms.info": info, "GET livechat/visitors.info": visitor,
                          "GET chat.getMessage": message,
                          "GET livechat/rooms": lambda q, b: (200, {"rooms": [],
                                                                    "success": True})})


def _body(room_id: str, kind: str = webhook.CHAT_CLOSE) -> bytes:
    return json.dumps({"type": kind, "_id": room_id, "visitor": {"_id": "V1"}}).encode()


def _receiver(tmp_path: Path, visitor_down: int = 0
              ) -> tuple[WebhookReceiver, list[tuple[str, dict[str, Any]]]]:
    rs = remote_on(_workspace(visitor_down), tmp_path / "h")
    events: list[tuple[str, dict[str, Any]]] = []
    rs.subscribe(lambda n, p: events.append((n, p)))
    return WebhookReceiver(rs, SECRET), events


def test_a_webhook_naming_a_channel_raises_no_livechat_event(tmp_path: Path) -> None:
    """A signed body naming a public channel (or a DM) the service account can read: rooms.info
    answers it, but it is no livechat room, so no room_started/room_closed reaches an app (it
    read as a closed livechat room with no visitor)."""
    rec, events = _receiver(tmp_path)
    for kind in (webhook.CHAT_START, webhook.CHAT_CLOSE, webhook.MESSAGE):
        rec.accept(_body("GENERAL", kind))
        for _ in range(3):  # the worker's passes, as `_run` retries them
            try:
                rec.drain()
            except Exception:  # what the worker would log and retry
                continue
    assert [n for n, p in events if p["room"]["id"] == "GENERAL"] == []


def test_send_test_or_a_room_out_of_reach_does_not_block_the_inbox(tmp_path: Path) -> None:
    """A room the workspace will never show the service account (Rocket.Chat answers
    'not-allowed') is dropped, and the webhook behind it is processed: it stayed at the head of
    the inbox, retried once a second for ever, and nothing after it was delivered."""
    rec, events = _receiver(tmp_path)
    rec.accept(_body("fasd6f5a4sd6f8a4sdf"))  # Rocket.Chat's Send Test payload's room id
    rec.accept(_body("L1", webhook.CHAT_START))
    assert rec.drain() == 2
    assert [n for n, _ in events] == ["livechat.room_started"]
    assert rec.server.owned.inbox_size() == 0


def test_a_known_room_now_out_of_reach_does_not_stop_the_catch_up(tmp_path: Path) -> None:
    """A room Stockade saw open that the workspace now refuses ('not-allowed'): the catch-up
    skips it. It raised out of the catch-up, which the worker retried before each drain, so
    no webhook was processed again until the host was restarted with the room reachable."""
    rec, events = _receiver(tmp_path)
    rec.accept(_body("L1", webhook.CHAT_START))  # the catch-up's horizon: a webhook was taken
    rec.server.owned.set_room_state("GONE1", None, True)
    rec.catch_up()
    assert rec.drain() == 1
    assert [n for n, _ in events] == ["livechat.room_started"]


def test_a_start_whose_visitor_read_failed_is_delivered_on_the_retry(tmp_path: Path) -> None:
    """The workspace fails the visitor read of a room's first webhook (a restart, a blip): the
    entry stays and its retry delivers room_started. The start was claimed before the read,
    so the retry found it claimed and the room's start was lost for good."""
    rec, events = _receiver(tmp_path, visitor_down=3)  # one read: the client and its two retries
    rec.accept(_body("L1", webhook.CHAT_START))
    with pytest.raises(Unavailable):
        rec.drain()
    assert rec.drain() == 1
    assert [n for n, _ in events] == ["livechat.room_started"]


def test_a_message_webhook_replayed_after_its_claim_expired_delivers_nothing(
        tmp_path: Path) -> None:
    """A signed Message webhook naming a message older than the record of delivered messages
    (DELIVERED_KEEP_S) is not delivered: once the claim was pruned, a replayed body (any
    variation of it is a new body) sent the old message to the apps again."""
    rec, events = _receiver(tmp_path)
    rec.server.owned.set_room_state("L1", None, True)
    rec.accept(json.dumps({"type": webhook.MESSAGE, "_id": "L1",
                           "messages": [{"_id": "M-OLD"}, {"_id": "M-NEW"}]}).encode())
    assert rec.drain() == 1
    assert [p["message"]["id"] for n, p in events if n == "message.sent"] == ["M-NEW"]


def test_a_room_closed_long_ago_is_not_closed_again(tmp_path: Path) -> None:
    """A signed webhook naming a room Stockade recorded closed, after its close's claim was
    pruned (DELIVERED_KEEP_S): no second room_closed (the claim alone stood in the way)."""
    rec, events = _receiver(tmp_path)
    rec.server.owned.set_room_state("LC", None, False)
    rec.accept(_body("LC"))
    assert rec.drain() == 1
    assert events == []


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[WebhookReceiver,
                                                                             int]]:
    """The receiver's endpoint on a loopback port (no worker), with a short body deadline."""
    monkeypatch.setattr(receiver, "BODY_DEADLINE_S", 1.0, raising=False)
    rec, _events = _receiver(tmp_path)
    sock = tcp_listener("127.0.0.1", 0)
    uv = uvicorn.Server(uvicorn.Config(rec.app(), log_level="critical", lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.01)
    try:
        yield rec, sock.getsockname()[1]
    finally:
        uv.should_exit = True
        thread.join(5)


def _head(port: int, token: str, length: int, first: bytes = b"") -> bytes:
    """Headers declaring `length` body bytes, then only `first` of them: what comes back within
    3 s (b"" if nothing)."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"{webhook.TOKEN_HEADER}: {token}\r\nContent-Length: {length}\r\n\r\n"
                  .encode() + first)
        try:
            return s.recv(4096)
        except TimeoutError:
            return b""


def test_a_caller_without_the_secret_gets_no_body_read(
        served: tuple[WebhookReceiver, int]) -> None:
    """Without the secret the answer is 401 before any of the body is read: the body was read
    first (up to 1 MiB held per connection, a slow body held open with no deadline), then the
    token checked; an unsigned 2 MiB body was a 413, not a 401."""
    rec, port = served
    assert _head(port, "wrong-secret", 500_000, b"{").startswith(b"HTTP/1.1 401")
    big = httpx.post(f"http://127.0.0.1:{port}{PATH}", content=b"[" * (2 * MAX_BODY_BYTES),
                     headers={webhook.TOKEN_HEADER: "wrong-secret"}, timeout=10)
    assert big.status_code == 401
    assert rec.refused["token"] == 2 and rec.refused["size"] == 0


def test_a_signed_body_trickled_in_is_cut_off(served: tuple[WebhookReceiver, int]) -> None:
    """A signed body that does not arrive whole within BODY_DEADLINE_S is a 408 (it held its
    connection, and a worker of the server, for as long as the sender kept it open)."""
    rec, port = served
    assert _head(port, SECRET, 1000, b'{"type":').startswith(b"HTTP/1.1 408")
    assert rec.refused["slow"] == 1 and rec.server.owned.inbox_size() == 0


def test_the_inbox_is_bounded(served: tuple[WebhookReceiver, int],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Distinct signed bodies past MAX_INBOX waiting are answered 503 (Rocket.Chat retries)
    and not stored: the inbox grew by one row per distinct body, without bound."""
    rec, port = served
    monkeypatch.setattr(receiver, "MAX_INBOX", 3, raising=False)
    codes = [httpx.post(f"http://127.0.0.1:{port}{PATH}", content=_body(f"R{i}"),
                        headers={webhook.TOKEN_HEADER: SECRET}, timeout=10).status_code
             for i in range(5)]
    assert codes == [200, 200, 200, 503, 503]
    assert rec.server.owned.inbox_size() == 3
    rec.server.owned.inbox_done(rec.server.owned.inbox_next()[0])  # type: ignore[index]
    again = httpx.post(f"http://127.0.0.1:{port}{PATH}", content=_body("R3"),
                       headers={webhook.TOKEN_HEADER: SECRET}, timeout=10)
    assert again.status_code == 200 and "duplicate" not in again.json()  # the retry is taken


def test_a_body_whose_store_failed_is_taken_on_the_retry(tmp_path: Path) -> None:
    """The store refuses the inbox row (a fault, here a trigger): the body is not claimed, so
    the workspace's retry of it is stored and its events delivered. The claim was committed
    before the row, and the retry was answered as a duplicate: the webhook was lost."""
    rec, events = _receiver(tmp_path)
    conn = sqlite3.connect(tmp_path / "h" / "host.db")
    conn.execute("CREATE TRIGGER no_inbox BEFORE INSERT ON rc_inbox "
                 "BEGIN SELECT RAISE(ABORT, 'the disk said no'); END")
    conn.commit()
    with pytest.raises(sqlite3.DatabaseError):
        rec.accept(_body("L1", webhook.CHAT_START))
    conn.execute("DROP TRIGGER no_inbox")
    conn.commit()
    conn.close()
    assert "duplicate" not in rec.accept(_body("L1", webhook.CHAT_START))
    assert rec.drain() == 1
    assert [n for n, _ in events] == ["livechat.room_started"]


def test_a_locked_store_stalls_no_other_request(served: tuple[WebhookReceiver, int]) -> None:
    """While another process holds host.db's write lock, a signed webhook waits for it on a
    worker thread, and the endpoint keeps answering other callers: the store was called on the
    event loop, so every request (and a console mounted beside) waited out the lock."""
    rec, port = served
    locker = sqlite3.connect(rec.server.owned.store.path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    answers: list[int] = []
    signed = threading.Thread(target=lambda: answers.append(httpx.post(
        f"http://127.0.0.1:{port}{PATH}", content=_body("L1", webhook.CHAT_START),
        headers={webhook.TOKEN_HEADER: SECRET}, timeout=30).status_code))
    signed.start()
    try:
        time.sleep(0.3)  # the signed request is waiting on the lock by now
        t0 = time.monotonic()
        other = httpx.post(f"http://127.0.0.1:{port}{PATH}", content=b"{}",
                           headers={webhook.TOKEN_HEADER: "wrong-secret"}, timeout=30)
        waited = time.monotonic() - t0
        assert other.status_code == 401
        assert answers == []  # the signed one still waits for the lock
    finally:
        time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))
        locker.execute("ROLLBACK")
        locker.close()
        signed.join(30)
    assert waited < 1.5, f"another caller waited {waited:.1f} s on the held lock"
    assert answers == [200] and rec.server.owned.inbox_size() == 1


@pytest.mark.parametrize("room", [b'"\\ud800"', b'"\xed\xa0\x80"', b'"L\xff"'])
def test_a_signed_body_with_a_lone_surrogate_is_refused(
        served: tuple[WebhookReceiver, int], room: bytes) -> None:
    """A room id holding a lone surrogate (escaped, or as the bytes ED A0 80 that Python's JSON
    parser reads from bytes) or invalid UTF-8 is a 400: the raw bytes were a 500 with a
    traceback, and the escaped one was stored and then blocked the inbox for good (its REST read
    could never be encoded, retried once a second)."""
    rec, port = served
    body = b'{"type": "LivechatSessionStart", "_id": ' + room + b'}'
    r = httpx.post(f"http://127.0.0.1:{port}{PATH}", content=body,
                   headers={webhook.TOKEN_HEADER: SECRET}, timeout=10)
    assert r.status_code == 400, r.text
    assert rec.server.owned.inbox_size() == 0


def test_an_entry_that_fails_every_pass_is_dropped_and_the_rest_delivered(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A webhook whose processing raises something other than a workspace error (an answer the
    adapter cannot read: a room with no `_id`) is tried `POISON_TRIES` times, then dropped with
    one line: it stayed at the head of the inbox, retried each second for ever, and no later
    webhook was delivered. A workspace that cannot be read now keeps its entries (above)."""
    rec, events = _receiver(tmp_path)
    real = rec.events_for

    def unreadable_room(hook: webhook.Webhook, seq: int) -> list[Any]:
        if hook.room_id == "BROKEN":
            raise KeyError("_id")
        return real(hook, seq)

    rec.events_for = unreadable_room  # type: ignore[method-assign]
    rec.accept(_body("BROKEN", webhook.CHAT_START))
    rec.accept(_body("L1", webhook.CHAT_START))
    for _ in range(receiver.POISON_TRIES - 1):  # the worker's passes, as `_run` retries them
        with pytest.raises(KeyError):
            rec.drain()
        assert events == [] and rec.server.owned.inbox_size() == 2
    with caplog.at_level("ERROR", logger=receiver.log.name):
        assert rec.drain() == 2
    assert [n for n, _ in events] == ["livechat.room_started"]
    assert rec.server.owned.inbox_size() == 0
    assert any("BROKEN" in r.getMessage() and "KeyError" in r.getMessage()
               for r in caplog.records), caplog.text
