"""A flood of messages waiting on the apps' pre-send hooks cannot stall the rest of the REST API.

A message route (`livechat/message`, `chat.sendMessage`, `chat.postMessage`) holds one of the
REST threads while the apps' hooks judge its message: up to their deadlines, and behind every
message queued for the same hook (an app's child judges one message at a time). Before, any
anonymous widget client could post messages faster than a hook answers: here 60 at once
against a hook of 0.2 s, and every REST thread waited on the hook, so a plain
`GET livechat/visitor/{token}`, which runs no hook at all, waited ~9 s behind them (and so did
every sign-in and every agent's read). Now at most `HOOK_THREADS` of them hold a thread at once;
the others wait for one on the event loop (holding no thread) for at most `HOOK_SLOT_WAIT_S`,
then are refused with 429 (Rocket.Chat's answer when its rate limiter refuses), and the rest of
the API keeps its threads.
"""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from host.clock import SystemClock
from host.server.embedded import EmbeddedServer
from host.server.listen import serving
from host.server.principals import SYSTEM
from host.server.rest import HOOK_THREADS, REST_THREADS

HOOK_S = 0.2
FLOOD = 60


def test_messages_waiting_on_the_hooks_leave_threads_for_the_rest_of_the_api(
        tmp_path: Path) -> None:
    assert HOOK_THREADS < REST_THREADS
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    judge = threading.Lock()
    judged: list[str] = []

    def hook(message: dict[str, Any]) -> dict[str, Any]:
        with judge:  # one app's child judges one message at a time
            time.sleep(HOOK_S)
            judged.append(message["text"])
        return message

    server.set_pre_send_hook(hook)
    flooder = server.save_visitor("visitor-flooder", "F")
    room = server.visitor_start_room(flooder["id"])["id"]
    server.save_visitor("visitor-bystander", "B")

    async def run(base: str) -> tuple[float, list[int]]:
        limits = httpx.Limits(max_connections=FLOOD + 10)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
            flood = [asyncio.create_task(c.post(
                "/api/v1/livechat/message",
                json={"token": "visitor-flooder", "rid": room, "msg": f"spam {i}"}))
                for i in range(FLOOD)]
            await asyncio.sleep(0.3)  # every flood request has reached the server
            t0 = time.monotonic()
            r = await c.get("/api/v1/livechat/visitor/visitor-bystander")
            waited = time.monotonic() - t0
            assert r.status_code == 200, r.text
            answers = await asyncio.gather(*flood)
        return waited, [a.status_code for a in answers]

    with serving(server) as (base, _server, _uv):
        waited, statuses = asyncio.run(run(base))
    # Before: ~9 s, behind the flood's hooks. A thread was free: no hook in the way.
    assert waited < 3.0, f"a plain GET waited {waited:.1f} s behind the messages"
    # Past the slots and a short wait for one, the flood is refused (a hook this slow judges
    # ~5 messages a second).
    assert set(statuses) <= {200, 429} and statuses.count(429) >= FLOOD // 2, statuses
    # What was refused never reached the hook nor the store.
    stored = server.messages_list(SYSTEM, room, 500)
    assert len(stored) == statuses.count(200) == len(judged)


def test_a_refused_message_says_to_retry(tmp_path: Path) -> None:
    """The refusal is Rocket.Chat's rate-limit shape, and a message sent after the wait goes
    through: nothing is held against the sender."""
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    release = threading.Event()
    entered = threading.Semaphore(0)

    def hook(message: dict[str, Any]) -> dict[str, Any]:
        if message["text"].startswith("held"):
            entered.release()
            release.wait(10)
        return message

    server.set_pre_send_hook(hook)
    visitor = server.save_visitor("visitor-retry", "R")
    room = server.visitor_start_room(visitor["id"])["id"]
    body = {"token": "visitor-retry", "rid": room}

    async def run(base: str) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            held = [asyncio.create_task(c.post("/api/v1/livechat/message",
                                               json={**body, "msg": f"held {i}"}))
                    for i in range(HOOK_THREADS)]
            for _ in range(HOOK_THREADS):  # every slot taken: each held message in the hook
                assert await asyncio.to_thread(entered.acquire, True, 10)
            r = await c.post("/api/v1/livechat/message", json={**body, "msg": "one more"})
            assert r.status_code == 429, r.text
            doc = r.json()
            assert doc["success"] is False and doc["errorType"] == "error-too-many-requests"
            assert r.headers.get("retry-after") == "1"  # before: none, a client could not tell
            release.set()
            assert all(a.status_code == 200 for a in await asyncio.gather(*held))
            later = await c.post("/api/v1/livechat/message", json={**body, "msg": "later"})
            assert later.status_code == 200, later.text

    with serving(server) as (base, _server, _uv):
        asyncio.run(run(base))


def test_a_client_that_hangs_up_frees_its_slot_when_the_hook_answers(tmp_path: Path) -> None:
    """The slot follows the thread, not the request: a client that hangs up leaves its message
    in the hook (and its thread taken) until the hook answers; then the slot is free again, and
    no slot is lost or gained however the requests ended."""
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    release = threading.Event()
    entered = threading.Semaphore(0)

    def hook(message: dict[str, Any]) -> dict[str, Any]:
        entered.release()
        release.wait(10)
        return message

    server.set_pre_send_hook(hook)
    visitor = server.save_visitor("visitor-hangup", "H")
    room = server.visitor_start_room(visitor["id"])["id"]
    body = {"token": "visitor-hangup", "rid": room}

    async def fill(c: httpx.AsyncClient, tag: str) -> list[asyncio.Task[httpx.Response]]:
        held = [asyncio.create_task(c.post("/api/v1/livechat/message",
                                           json={**body, "msg": f"{tag} {i}"}))
                for i in range(HOOK_THREADS)]
        for _ in range(HOOK_THREADS):
            assert await asyncio.to_thread(entered.acquire, True, 10)
        return held

    async def run(base: str) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            for task in await fill(c, "gone"):
                task.cancel()  # the clients hang up while their messages are in the hook
            await asyncio.sleep(0.2)
            r = await c.post("/api/v1/livechat/message", json={**body, "msg": "blocked"})
            assert r.status_code == 429, r.text  # the threads are still in the hook
            release.set()
            await asyncio.sleep(0.2)
            release.clear()
            held = await fill(c, "held")  # every slot back: HOOK_THREADS fit again ...
            r = await c.post("/api/v1/livechat/message", json={**body, "msg": "extra"})
            assert r.status_code == 429, r.text  # ... and not one more
            release.set()
            assert all(a.status_code == 200 for a in await asyncio.gather(*held))

    with serving(server) as (base, _server, _uv):
        asyncio.run(run(base))
