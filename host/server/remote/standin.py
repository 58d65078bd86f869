"""The stand-in workspace: the embedded server made to behave like a Rocket.Chat workspace seen
from outside (`stockade standin`, its own process). No Rocket.Chat can run on the machines this
is tested on; this is the documented stand-in (docs/ROCKETCHAT.md says what was verified only
against it).

- `WebhookSender`: Rocket.Chat's omnichannel webhooks (`webhook.build`), sent to the configured
  URL with the secret in `X-RocketChat-Livechat-Token`, retried on a non-200 answer `retries`
  times `spacing_s` apart (Rocket.Chat: ten, ten seconds; configurable so a test can wait less),
  one at a time in the order of the events, or `concurrency` at once (Rocket.Chat sends each
  webhook on its own, never waiting for another's answer: a busy workspace's burst arrives
  interleaved, retries among first deliveries).
  The embedded server's events are mapped to the webhook Rocket.Chat would send: a transfer is
  one "Forwarding" (its unassign/assign steps are not sent on their own), an agent leaving a
  room that goes back to the queue is "Chat Queued".
- `Status`: `GET /_standin/status`, the webhooks still to send (what a demo waits on).
- `Faults`: an ASGI wrapper a test drives over `POST /_standin/faults` to make a route slow
  (before or after it applies), or answer 429 / 5xx, a number of times, or rate-limit it as
  Rocket.Chat does for a time (`rate-limit`). Only with `--faults`.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx

from host.server import rest_shapes as rs
from host.server.embedded import EmbeddedServer
from host.server.events import (
    AGENT_ASSIGNED,
    AGENT_UNASSIGNED,
    MESSAGE_SENT,
    ROOM_CLOSED,
    ROOM_STARTED,
    ROOM_TRANSFERRED,
)
from host.server.principals import SYSTEM
from host.server.remote import webhook

log = logging.getLogger("stockade.standin")

# How long the sender waits after an event for the rest of its commit's events (a transfer
# emits unassigned, assigned, transferred together) before it maps them to webhooks.
COALESCE_S = 0.02
SEND_TIMEOUT_S = 5.0  # Rocket.Chat's "HTTP timeout" setting, per request


class WebhookSender:
    """Sends the embedded server's events as Rocket.Chat's omnichannel webhooks."""

    def __init__(self, server: EmbeddedServer, url: str, secret: str, *,
                 retries: int = webhook.RETRIES, spacing_s: float = webhook.RETRY_SPACING_S,
                 concurrency: int = 1) -> None:
        self.server, self.url, self.secret = server, url, secret
        self.retries, self.spacing_s = retries, spacing_s
        self._q: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._http = httpx.Client(timeout=SEND_TIMEOUT_S, trust_env=False, limits=httpx.Limits(
            max_connections=max(concurrency, 1), max_keepalive_connections=max(concurrency, 1)))
        # Webhooks in flight at once (each with its own retries); 1: in the events' order.
        self._pool = (ThreadPoolExecutor(concurrency, thread_name_prefix="standin-send")
                      if concurrency > 1 else None)
        self.sent = 0
        self.failed = 0
        # Events taken and not yet sent (or given up): what `/_standin/status` reports, so a
        # demo or a test can wait for the webhooks to be out instead of guessing a pause.
        self.pending = 0
        self._count = threading.Lock()
        self._unsubscribe = server.subscribe(self._take)
        self._thread = threading.Thread(target=self._run, name="standin-webhooks", daemon=True)
        self._thread.start()

    def _take(self, name: str, payload: dict[str, Any]) -> None:
        with self._count:
            self.pending += 1
        self._q.put((name, payload))

    def status(self) -> dict[str, int]:
        with self._count:
            return {"webhooks_pending": self.pending, "sent": self.sent, "failed": self.failed}

    def close(self) -> None:
        self._unsubscribe()
        self._q.put(None)
        self._thread.join(5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def _run(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            time.sleep(COALESCE_S)
            batch = [first]
            while True:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                batch.append(nxt)
            transferred = {str(p["room"]["id"]) for n, p in batch if n == ROOM_TRANSFERRED}
            for name, payload in batch:
                body = None
                try:
                    # livechat.guest_saved has no room: no omnichannel webhook carries it
                    body = (self._body(name, payload, transferred)
                            if isinstance(payload.get("room"), dict) else None)
                except Exception:  # the sender outlives any one event
                    log.exception("standin: could not build the webhook for %s", name)
                if body is not None and self._pool is not None:
                    self._pool.submit(self._deliver, body)
                else:
                    self._deliver(body)

    def _deliver(self, body: dict[str, Any] | None) -> None:
        try:
            if body is not None:
                self._send(body)
        except Exception:  # the sender outlives any one webhook
            log.exception("standin: could not send the webhook %s", body and body.get("type"))
        finally:
            with self._count:
                self.pending -= 1

    def _body(self, name: str, payload: dict[str, Any], transferred: set[str]
              ) -> dict[str, Any] | None:
        rid = str(payload["room"]["id"])
        if name in (AGENT_ASSIGNED, AGENT_UNASSIGNED) and rid in transferred:
            return None  # part of a forward: Rocket.Chat sends one "Forwarding"
        room = self.server.livechat_get_room(SYSTEM, rid)
        kind = {ROOM_STARTED: webhook.CHAT_START, ROOM_CLOSED: webhook.CHAT_CLOSE,
                AGENT_ASSIGNED: webhook.CHAT_TAKEN, AGENT_UNASSIGNED: webhook.CHAT_QUEUED,
                ROOM_TRANSFERRED: webhook.CHAT_FORWARDED, MESSAGE_SENT: webhook.MESSAGE}.get(name)
        if kind is None:
            return None  # livechat.guest_saved: no omnichannel webhook carries it
        if name == AGENT_UNASSIGNED and room["served_by"] is not None:
            return None
        visitor = rs.visitor(self.server.livechat_get_visitor(SYSTEM, room["visitor_id"]))
        visitor["username"] = f"guest-{room['visitor_id']}"
        agent = (rs.user(self.server.users_get(SYSTEM, room["served_by"]))
                 if room["served_by"] else None)
        messages: list[dict[str, Any]] = []
        if name == MESSAGE_SENT:
            messages = [rs.message(payload["message"])]
        elif name == ROOM_CLOSED:
            messages = [rs.message(m) for m in self.server.messages_list(SYSTEM, rid, 500)]
        for m in messages:
            if m["u"]["_id"] == room["visitor_id"]:
                m["u"]["type"] = "visitor"
        return webhook.build(kind, rs.room(room), visitor, agent, messages)

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        headers = {webhook.TOKEN_HEADER: self.secret, "Content-Type": "application/json"}
        for attempt in range(1 + self.retries):
            try:
                if self._http.post(self.url, content=data, headers=headers).status_code == 200:
                    with self._count:
                        self.sent += 1
                    return
            except httpx.HTTPError:
                pass
            if attempt < self.retries:
                time.sleep(self.spacing_s)
        with self._count:
            self.failed += 1
        log.warning("standin: webhook %s for room %s not delivered after %d attempts",
                    body.get("type"), body.get("_id"), 1 + self.retries)


class Status:
    """ASGI wrapper answering `GET /_standin/status` with the sender's counts."""

    def __init__(self, app: Any, sender: WebhookSender | None) -> None:
        self.app, self.sender = app, sender

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_standin/status":
            await _respond(send, 200, self.sender.status() if self.sender else
                           {"webhooks_pending": 0, "sent": 0, "failed": 0})
            return
        await self.app(scope, receive, send)


class Faults:
    """ASGI wrapper: per-route faults a test switches on over `POST /_standin/faults`
    `{"route", "kind": "status"|"delay-before"|"delay-after"|"rate-limit", "value", "times"}`.

    `status` 429 answers with `Retry-After` (`retry_after`, 0 unless set), as a proxy's
    limiter may. `rate-limit` is Rocket.Chat's own REST limiter instead: every request to the
    route is refused for `value` seconds from the moment the rule is set (its window's reset),
    each with 429, `errorType` `error-too-many-requests` and `X-RateLimit-Limit`, `-Remaining`
    (0) and `-Reset` (the reset as epoch milliseconds), and no `Retry-After`, as Rocket.Chat
    answers; `times` bounds how many it refuses (default: no bound)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rules: dict[str, dict[str, Any]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope["path"])
        if path == "/_standin/faults":
            body = b""
            while True:
                msg = await receive()
                body += msg.get("body", b"")
                if not msg.get("more_body"):
                    break
            rule = json.loads(body or b"{}")
            if rule.get("kind") == "rate-limit":
                rule["reset"] = time.time() + float(rule.get("value", 0))
                rule.setdefault("times", 1 << 30)
            if rule.get("route"):
                self.rules[str(rule["route"])] = rule
            else:
                self.rules.clear()
            await _respond(send, 200, {"success": True})
            return
        rule = self.rules.get(path.removeprefix("/api/v1/"))
        if rule is None or int(rule.get("times", 1)) <= 0:
            await self.app(scope, receive, send)
            return
        kind, value = rule.get("kind"), rule.get("value", 0)
        if kind == "rate-limit" and time.time() >= float(rule["reset"]):
            await self.app(scope, receive, send)  # the window has reset
            return
        rule["times"] = int(rule.get("times", 1)) - 1
        if kind == "rate-limit":
            await _respond(send, 429, {
                "success": False, "errorType": "error-too-many-requests",
                "error": "Error, too many requests. Please slow down. You must wait "
                         f"{max(0, round(float(rule['reset']) - time.time()))} seconds before "
                         "trying this endpoint again. [error-too-many-requests]"}, [
                (b"x-ratelimit-limit", b"10"), (b"x-ratelimit-remaining", b"0"),
                (b"x-ratelimit-reset", str(int(float(rule["reset"]) * 1000)).encode())])
        elif kind == "status":
            await _respond(send, int(value), {"success": False, "error": "stand-in fault"},
                           [(b"retry-after", str(rule.get("retry_after", 0)).encode())]
                           if int(value) == 429 else [])
        elif kind == "delay-before":
            await anyio.sleep(float(value))
            await self.app(scope, receive, send)
        else:  # delay-after: apply, then hold the answer back
            held: list[Any] = []

            async def keep(message: Any) -> None:
                held.append(message)

            await self.app(scope, receive, keep)
            await anyio.sleep(float(value))
            for message in held:
                await send(message)


async def _respond(send: Any, status: int, body: dict[str, Any],
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *(extra or [])]})
    await send({"type": "http.response.body", "body": data})
