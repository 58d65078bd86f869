"""The host's endpoint for Rocket.Chat's omnichannel webhooks, and the worker that turns them into
Stockade events.

The endpoint (`POST /rocketchat/webhook`) answers fast and does little: it refuses a wrong or
missing `X-RocketChat-Livechat-Token` (401, compared in constant time) before it reads any of
the body, a body over `MAX_BODY_BYTES` (413) or not whole within `BODY_DEADLINE_S` (408),
refuses a malformed payload (400), answers 503 while `MAX_INBOX` webhooks wait (Rocket.Chat
retries), answers an identical body it already took
(Rocket.Chat's own retry, or a replay) 200 without taking it again, and otherwise stores the
body in `host.db`'s inbox and answers 200 (the body's claim and its inbox row in one
transaction, on a worker thread: a locked store holds up no other request). Rocket.Chat retries
a non-200 ten times, ten seconds apart, so an answer that waited on the apps would only multiply
the deliveries.

The worker reads the inbox in order. A webhook is a hint, never the truth: for each one it reads
the room from the REST API and compares it with what Stockade last knew of that room
(`rc_rooms`), and derives the events from the difference — a room seen for the first time
started, a new serving agent was assigned (and the previous one, which no webhook names,
unassigned), a room no longer open closed. A Message webhook's messages are ids only: each is
read back (`chat.getMessage`) and delivered as the workspace holds it, or dropped if the room
holds no such message. A replayed or forged-but-signed webhook therefore changes nothing the
workspace did not change, and each event is claimed by key in `rc_delivered` before it is
dispatched: no app sees the same event twice, even across restarts.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from host.server.errors import InvalidArgument, NotFound, ServerError
from host.server.events import (
    AGENT_ASSIGNED,
    AGENT_UNASSIGNED,
    MESSAGE_SENT,
    NO_CAUSE,
    ROOM_CLOSED,
    ROOM_STARTED,
    ROOM_TRANSFERRED,
    Cause,
    Event,
)
from host.server.gone import client_gone
from host.server.remote import webhook
from host.server.remote.owned import DELIVERED_KEEP_S
from host.server.remote.server import RemoteServer
from host.server.shapes import Agent, Message, Room

log = logging.getLogger("stockade.rocketchat.webhook")

PATH = "/rocketchat/webhook"
# Guards the host's memory and disk against an oversized body: a close webhook carries the whole
# transcript, so the cap is generous (a 1,000-message chat is ~300 KiB).
MAX_BODY_BYTES = 1024 * 1024
# Bytes of webhook bodies being read or waiting to be stored at once, each counted by its
# declared length (MAX_BODY_BYTES when it declares none). Guards the host's memory against many
# large signed deliveries at once (a workspace closing many long chats together sends each close
# webhook, its whole transcript, on its own; 128 held at 1 MiB grew the host by 170 MiB, and the
# listener takes 1,024 connections): past it a delivery is answered 503 before its body is read,
# and Rocket.Chat sends it again. Small webhooks (a few KiB) fit by the thousand.
MAX_BODIES_BYTES = 32 * 1024 * 1024
# Seconds a signed body has to arrive whole (Rocket.Chat posts a webhook at once; its own
# request times out sooner). Guards the host against a body trickled in to hold a connection.
BODY_DEADLINE_S = 30.0
# Webhooks waiting in the inbox before the endpoint answers 503 (Rocket.Chat retries it). Guards
# host.db's disk against a signed sender posting distinct bodies faster than the worker reads
# the workspace (or while the workspace is down); far above a real workspace's backlog.
MAX_INBOX = 10_000
# The catch-up reads open rooms that started up to this long before the last webhook taken (a
# room whose Chat Start was the webhook lost at the very moment the host went down).
CATCH_UP_MARGIN_S = 60.0
# Messages read back per room at catch-up (one channels.messages page). Guards the start of a
# host that was down long against reading whole histories; older missed messages are not
# delivered (docs/ROCKETCHAT.md).
CATCH_UP_MESSAGES = 100
# Message ids read back per Message webhook (one `chat.getMessage` each). Rocket.Chat sends one
# message per Message webhook; guards the workspace against a signed body naming a thousand ids,
# a thousand requests. Ids past it are not delivered (logged).
MAX_HOOK_MESSAGES = 10
# A message a Message webhook names is delivered only if it is younger than this. Guards against
# a signed body replayed after its message's claim was pruned (DELIVERED_KEEP_S after delivery,
# so after the message's own time): the message went to the apps a second time. A day short of
# the claims' life, for a workspace clock ahead of the host's.
MAX_MESSAGE_AGE_S = DELIVERED_KEEP_S - 24 * 3600.0
# Rocket.Chat's secret token must be at least this long for the receiver to start (a short
# token could be guessed; `stockade rocketchat connect` makes 32 random bytes).
MIN_SECRET_LEN = 16
# What the workspace answers about a room or message that retrying will not change: none (a
# room that is not a livechat room is NotFound too), or refused for good (Rocket.Chat answers a
# room the service account may not see with 'not-allowed', InvalidArgument here). Guards the
# inbox and the catch-up against an entry retried for ever at their head (Send Test, a forged
# id); anything else (Unavailable, a refused token) is retried.
GONE: tuple[type[ServerError], ...] = (NotFound, InvalidArgument)
# How many passes in a row an inbox entry may fail with anything but a workspace error (an
# answer the adapter cannot read, a bug) before it is dropped with one line. Guards the inbox:
# such an entry stayed at its head, retried each second for ever, and no later webhook was
# processed. A workspace that cannot be read now (a `ServerError`) keeps its entries.
POISON_TRIES = 5
# A log line of each kind (a refusal's reason; the worker finding the workspace unreadable) at
# most this often, saying how many were held back since. Guards the host's log against a sender
# without the secret posting as fast as it can (the receiver's URL is reachable through the TLS
# proxy: one line per request) and against an outage's traceback every second; the counts stay
# exact in `refused`.
LOG_EVERY_S = 10.0


class _Lines:
    """Which log lines are due: at most one per key per LOG_EVERY_S."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def due(self, key: str) -> int | None:
        """None: hold this line back; else write it, with this many held back before it."""
        now = time.monotonic()
        with self._lock:
            if now < self._next.get(key, 0.0):
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._next[key] = now + LOG_EVERY_S
            return self._held.pop(key, 0)


def _more(held: int) -> str:
    return f" (and {held} more like it since the last such line)" if held else ""


def _declared_fits(declared: str) -> bool:
    """Whether a Content-Length is a plain number of at most MAX_BODY_BYTES. Read by length
    first, as the console does: `int()` raises past 4300 digits, and the HTTP parser passes on
    thousands of leading zeros (a 500 and a traceback per request); `isdigit()` alone also takes
    digits that are not ASCII ('²'), which `int()` refuses. 18 digits: far past the cap, and
    never a number `int()` refuses."""
    if not (0 < len(declared) <= 18 and declared.isascii() and declared.isdigit()):
        return False
    return int(declared) <= MAX_BODY_BYTES


class WebhookReceiver:
    """The endpoint and its worker (see the module docstring)."""

    def __init__(self, server: RemoteServer, secret: str) -> None:
        if len(secret) < MIN_SECRET_LEN:
            raise ValueError(f"the webhook secret must be at least {MIN_SECRET_LEN} characters")
        self.server = server
        self._secret = secret.encode("utf-8")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None
        self.refused = {"token": 0, "size": 0, "slow": 0, "payload": 0, "full": 0,
                        "busy": 0, "repeat": 0}
        self._in_flight = 0  # bytes reserved by bodies being received (MAX_BODIES_BYTES)
        self._flight = threading.Lock()
        self.last_activity = time.monotonic()  # a webhook taken or processed (demo, tests)
        self._catch_up = False
        self._lines = _Lines()
        self._unreadable = False  # the worker's last pass found the workspace unreadable
        self._failing = (0, 0)  # the inbox entry whose passes failed, and how many in a row

    # -- HTTP ----------------------------------------------------------------------------------
    def app(self, mounts: Sequence[BaseRoute] = ()) -> Starlette:
        """The webhook endpoint at `PATH`, with `mounts` beside it (`serve` mounts the
        console)."""
        return Starlette(routes=[Route(PATH, self._endpoint, methods=["POST"]), *mounts],
                         exception_handlers={ClientDisconnect: client_gone})

    async def _endpoint(self, request: Request) -> JSONResponse:
        # The secret before the body: a caller without it gets no byte of the body read, so it
        # can neither hold a MiB of the host's memory per connection nor a slow body open.
        token = request.headers.get(webhook.TOKEN_HEADER, "").encode("utf-8")
        if not hmac.compare_digest(token, self._secret):
            return self._refuse("token", 401, "wrong or missing secret token")
        declared = request.headers.get("content-length")
        if declared is not None and not _declared_fits(declared):
            return self._refuse("size", 413, "the body is too large")
        need = int(declared) if declared is not None else MAX_BODY_BYTES
        with self._flight:
            if self._in_flight + need > MAX_BODIES_BYTES:
                busy = True
            else:
                busy, self._in_flight = False, self._in_flight + need
        if busy:
            return self._refuse("busy", 503, "too many webhook bodies are arriving at once; "
                                "retry later")
        try:
            return await self._receive(request)
        finally:
            with self._flight:
                self._in_flight -= need

    async def _receive(self, request: Request) -> JSONResponse:
        try:
            body = await asyncio.wait_for(self._read(request), BODY_DEADLINE_S)
        except TimeoutError:
            return self._refuse("slow", 408, "the body did not arrive in time")
        if body is None:
            return self._refuse("size", 413, "the body is too large")
        try:
            webhook.parse(body)
        except webhook.BadPayload as exc:
            return self._refuse("payload", 400, str(exc))
        # The store's calls on a worker thread: a store locked by another writer for seconds
        # would otherwise stall the event loop, and with it every other request it serves
        # (the console mounted beside, other webhooks' refusals).
        return await run_in_threadpool(self._take, body)

    def _take(self, body: bytes) -> JSONResponse:
        if self.server.owned.inbox_size() >= MAX_INBOX:
            return self._refuse("full", 503, "the inbox is full; retry later")
        return JSONResponse(self.accept(body))

    @staticmethod
    async def _read(request: Request) -> bytes | None:
        """The body, or None once it passes MAX_BODY_BYTES."""
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return None
        return bytes(body)

    def _refuse(self, why: str, status: int, message: str) -> JSONResponse:
        self.refused[why] += 1
        held = self._lines.due(why)
        if held is not None:
            log.warning("rocketchat webhook refused (%d): %s%s", status, message, _more(held))
        return JSONResponse({"success": False, "error": message}, status_code=status)

    def accept(self, body: bytes) -> dict[str, Any]:
        """Store a verified body once (an identical one again is a retry or a replay)."""
        now = self.server.clock.now()
        key = "body:" + hashlib.sha256(body).hexdigest()
        if self.server.owned.inbox_take(key, body.decode("utf-8"), now) is None:
            self.refused["repeat"] += 1
            return {"success": True, "duplicate": True}
        self.last_activity = time.monotonic()
        self._wake.set()
        return {"success": True}

    # -- the worker ------------------------------------------------------------------------------
    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(target=self._run, name="stockade-webhooks", daemon=True)
        self._catch_up = True
        self._thread.start()
        self._wake.set()  # whatever an earlier run left in the inbox
        return self

    def stop(self) -> None:
        """Stop the worker (idempotent); what is left in the inbox waits for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def idle(self) -> bool:
        """Nothing in the inbox and nothing being processed."""
        if self._busy.locked():
            return False
        return self.server.owned.inbox_size() == 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                if self._catch_up:
                    self.catch_up()
                    self._catch_up = False
                self.drain()
            except ServerError as exc:
                # The workspace down, slow or refusing for now: expected, one line (no
                # traceback), the webhooks wait in the inbox.
                self._unreadable = True
                held = self._lines.due("unreadable")
                if held is not None:
                    log.warning("webhook worker: the workspace cannot be read now (%s); the "
                                "webhooks wait in the inbox, tried again each second%s",
                                exc.message, _more(held))
                self._stop.wait(1.0)
                self._wake.set()
            except Exception:
                held = self._lines.due("failed")
                if held is not None:
                    log.exception("webhook worker: a pass failed; retrying%s", _more(held))
                self._stop.wait(1.0)
                self._wake.set()
            else:
                if self._unreadable:
                    self._unreadable = False
                    log.info("webhook worker: the workspace answers again")

    def catch_up(self) -> int:
        """What the workspace did while no host listened (webhooks it gave up on after its
        ten retries): each room Stockade last saw open is read again, and each open room that
        started after the last webhook taken (minus CATCH_UP_MARGIN_S) and that Stockade never
        saw; the events follow from the difference, as for a webhook, each claimed once. A
        home that never received a webhook catches nothing up: rooms that were open before
        Stockade was connected are not announced as started. Returns the rooms read."""
        owned = self.server.owned
        since = owned.last_webhook()
        if since is None:
            return 0
        rooms = set(owned.open_rooms())
        horizon = since - CATCH_UP_MARGIN_S
        opened, cut = self.server.open_rooms_since(horizon)
        if cut:
            log.warning("catch-up: more open rooms were opened while no host listened than "
                        "it reads (%d); the oldest of them are not announced", len(opened))
        rooms |= {r["id"] for r in opened if owned.room_state(r["id"]) is None}
        seq = -int(self.server.clock.now() * 1000)  # one catch-up pass: its own claim keys
        with self._busy:
            for rid in sorted(rooms):
                hook = webhook.Webhook(type="catch-up", room_id=rid, visitor_id=None,
                                       visitor_name=None, agent_id=None)
                try:
                    events = self.events_for(hook, seq)
                    said = self._missed_messages(rid, horizon)
                except GONE as exc:
                    log.warning("catch-up: room %r cannot be read (%s); skipped", rid, exc)
                    continue
                # a room's messages come before its close, as their webhooks would have
                closed = [e for e in events if e[0] == ROOM_CLOSED]
                for name, payload in [e for e in events if e[0] != ROOM_CLOSED] + said + closed:
                    self.server.bus.emit([(name, payload)], self._cause(name, payload))
        self.last_activity = time.monotonic()
        return len(rooms)

    def _missed_messages(self, room_id: str, horizon: float) -> list[Event]:
        """`message.sent` for the room's messages since `horizon` that no webhook brought
        (each claimed by id, the key the webhook path claims, so neither path delivers one
        twice); at most CATCH_UP_MESSAGES per room, the newest."""
        srv, owned = self.server, self.server.owned
        out: list[Event] = []
        now = srv.clock.now()
        room: Room | None = None
        for m in srv.messages_list(None, room_id, CATCH_UP_MESSAGES):  # type: ignore[arg-type]
            if m["ts"] < horizon or not m["id"]:
                continue
            if owned.claim_event(f"msg:{m['id']}", now):
                room = room or srv.room(room_id)
                out.append((MESSAGE_SENT, {"message": m, "room": room}))
        return out

    def drain(self) -> int:
        """Process the inbox in order; returns how many webhooks were processed. A webhook whose
        room cannot be read now (the workspace is down) stays in the inbox for the next pass."""
        done = 0
        while not self._stop.is_set():
            with self._busy:
                item = self.server.owned.inbox_next()
                if item is None:
                    return done
                seq, body = item
                hook = webhook.parse(body.encode("utf-8"))
                try:
                    events = self.events_for(hook, seq)
                except GONE as exc:
                    # a room that no longer exists, or never will for Stockade: nothing to
                    # derive, and the entries behind it are not held up
                    log.warning("rocketchat webhook for room %r dropped: %s", hook.room_id, exc)
                    events = []
                except ServerError:
                    raise  # the workspace, for now: the entry waits (`_run`)
                except Exception as exc:
                    if not self._failed_for_good(seq):
                        raise
                    log.error("rocketchat webhook for room %r dropped after %d failed passes "
                              "(%s: %s); the webhooks behind it go on", hook.room_id,
                              POISON_TRIES, type(exc).__name__, str(exc)[:200])
                    events = []
                for name, payload in events:
                    self.server.bus.emit([(name, payload)], self._cause(name, payload))
                self.server.owned.inbox_done(seq)
                self.last_activity = time.monotonic()
                done += 1
        return done

    def _cause(self, name: str, payload: dict[str, Any]) -> Cause:
        """The cause of an event: for the message of an app's write made while it handled an
        event, what this host recorded when it chose that message's id and sent it
        (`sentcauses`), so the host's depth limit holds through the workspace; else NO_CAUSE
        (a person's action, or a message another host sent: depth 0)."""
        if name != MESSAGE_SENT:
            return NO_CAUSE
        msg = payload["message"]
        cause = self.server.sent.take(str(msg["id"]), str(msg["room_id"]),
                                      self.server.clock.now())
        return NO_CAUSE if cause is None else cause

    def _failed_for_good(self, seq: int) -> bool:
        """Count one more failed pass of inbox entry `seq` (in a row); True at POISON_TRIES."""
        last, count = self._failing
        count = count + 1 if last == seq else 1
        self._failing = (seq, count)
        return count >= POISON_TRIES

    def events_for(self, hook: webhook.Webhook, seq: int) -> list[Event]:
        """The events the workspace's state says happened, each claimed once (an assignment
        change under the inbox entry's `seq`: processing the same entry again after a crash
        claims nothing new)."""
        srv, owned = self.server, self.server.owned
        now = srv.clock.now()
        room = srv.room(hook.room_id)
        # Read before anything is claimed: a read that fails leaves the entry for the next pass
        # with every event still to deliver.
        said = self._said(hook, room["id"]) if hook.type == webhook.MESSAGE else []
        known = owned.room_state(room["id"])
        out: list[Event] = []
        # The visitor is read before the start is claimed: a claim followed by a failed read
        # lost the room's start for good (the retry found it claimed).
        if known is None and not owned.delivered(f"started:{room['id']}"):
            visitor = srv.livechat_get_visitor(None, room["visitor_id"])  # type: ignore[arg-type]
            if owned.claim_event(f"started:{room['id']}", now):
                out.append((ROOM_STARTED, {"room": room, "visitor": visitor}))
        before = known[0] if known else None
        after = room["served_by"]
        if before != after:
            prev, new = self._agent(before), self._agent(after)
            n = owned.claim_event(f"serve:{room['id']}:{before}>{after}:{seq}", now)
            if n and prev is not None:
                out.append((AGENT_UNASSIGNED, {"room": room, "agent": prev}))
            if n and new is not None:
                out.append((AGENT_ASSIGNED, {"room": room, "agent": new}))
            # One agent to another with no queue between is a forward, whichever webhook
            # brought the news (the room's own "Forwarding" may arrive after a message's).
            if n and before is not None and (after is not None
                                             or hook.type == webhook.CHAT_FORWARDED):
                dep = None
                if room["department_id"]:
                    try:
                        dep = srv.livechat_get_department(None, room["department_id"])
                    except ServerError:
                        dep = None
                out.append((ROOM_TRANSFERRED, {"room": room, "from": prev, "to": new,
                                               "department": dep}))
        for m in said:
            if owned.claim_event(f"msg:{m['id']}", now):
                out.append((MESSAGE_SENT, {"message": m, "room": room}))
        # Only a room Stockade last saw open (or never saw) closes: the claim is pruned after
        # DELIVERED_KEEP_S, and a webhook replayed later closed the room a second time.
        if not room["open"] and (known is None or known[1]) \
                and owned.claim_event(f"closed:{room['id']}", now):
            closer = room["closed_by"] or {"type": "user", "id": None, "app_id": None}
            out.append((ROOM_CLOSED, {"room": room, "closed_by": closer}))
        owned.set_room_state(room["id"], after, room["open"])
        return out

    def _agent(self, user_id: str | None) -> Agent | None:
        if user_id is None:
            return None
        try:
            return self.server.agent(user_id)
        except NotFound:
            u = self.server.users_get(None, user_id)  # type: ignore[arg-type]
            return Agent(user_id=u["id"], username=u["username"], name=u["name"],
                         type=u["type"], status="not-available", routable_offline=False,
                         departments=[])

    def _said(self, hook: webhook.Webhook, room_id: str) -> list[Message]:
        """The messages a Message webhook names, as the workspace holds them: its ids are hints
        (its text, sender and times are never used). Each id not yet delivered is read back with
        `chat.getMessage`; one the workspace does not hold, or holds in another room, is
        dropped, as catch-up keeps only what `channels.messages` lists. At most
        MAX_HOOK_MESSAGES ids per webhook."""
        ids = list(dict.fromkeys(m.id for m in hook.messages if m.id))
        if len(ids) > MAX_HOOK_MESSAGES:
            log.warning("rocketchat webhook for room %r names %d messages; only the first %d "
                        "are read", room_id, len(ids), MAX_HOOK_MESSAGES)
            ids = ids[:MAX_HOOK_MESSAGES]
        out: list[Message] = []
        oldest = self.server.clock.now() - MAX_MESSAGE_AGE_S
        for mid in ids:
            if self.server.owned.delivered(f"msg:{mid}"):
                continue  # no read for a message an app already has
            try:
                m = self.server.message(mid)
            except (NotFound, InvalidArgument):
                continue  # the workspace holds no such message: a forged or stale id
            if m["room_id"] != room_id:
                continue
            if m["ts"] < oldest:
                log.warning("rocketchat webhook names message %r of %r: older than the record "
                            "of delivered messages, not delivered", mid, room_id)
                continue
            out.append(m)
        return out
