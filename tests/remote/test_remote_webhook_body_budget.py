"""The receiver's memory under many large signed deliveries at once (a busy workspace closing
many long chats together sends each close webhook, its whole transcript, on its own): the real
receiver over loopback. Before: each delivery's body was read whole into memory, up to 1 MiB,
however many arrived at once — bounded only by the listener's connection cap (1,024: a GiB).
Now bodies in flight share `MAX_BODIES_BYTES` (by their declared length); a delivery past it is
answered 503 before its body is read, and Rocket.Chat sends it again later."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import uvicorn
from rchelp import SECRET, Standin, remote

from host.home import Home
from host.server.listen import tcp_listener
from host.server.remote import receiver as receiver_mod
from host.server.remote import webhook
from host.server.remote.receiver import MAX_BODY_BYTES, PATH, WebhookReceiver

HELD = 128  # deliveries of 1 MiB each, their last byte never sent
# One body for every sender (made before the memory is measured: only the receiver's grows).
_BODY = b" " * (MAX_BODY_BYTES - 1)


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture()
def hook(clean: Standin, tmp_path: Path) -> Iterator[tuple[int, WebhookReceiver]]:
    sock = tcp_listener("127.0.0.1", 0)
    rx = WebhookReceiver(remote(Home(tmp_path / "host").ensure(), clean), SECRET)
    uv = uvicorn.Server(uvicorn.Config(rx.app(), log_level="critical", lifespan="off"))
    t = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    while not uv.started:
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1], rx
    finally:
        uv.should_exit = True
        t.join(10)


def _held_delivery(port: int, answers: list[bytes], socks: list[socket.socket]) -> None:
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    socks.append(s)
    head = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{webhook.TOKEN_HEADER}: {SECRET}\r\nContent-Length: {MAX_BODY_BYTES}\r\n\r\n")
    try:
        s.sendall(head.encode())
        s.sendall(_BODY)
        s.settimeout(3.0)
        answers.append(s.recv(64))
    except OSError:
        answers.append(b"")  # still reading (no answer in 3 s), or closed after a 503


def test_many_large_deliveries_at_once_hold_a_bounded_amount_of_memory(
        hook: tuple[int, WebhookReceiver]) -> None:
    port, rx = hook
    before = _rss()
    answers: list[bytes] = []
    socks: list[socket.socket] = []
    try:
        with ThreadPoolExecutor(HELD) as pool:
            for _ in range(HELD):
                pool.submit(_held_delivery, port, answers, socks)
            time.sleep(2.0)
            grown = _rss() - before  # the bodies the receiver holds, mid-read
        refused = sum(1 for a in answers if b" 503 " in a)
    finally:
        for s in socks:
            s.close()
    budget = receiver_mod.MAX_BODIES_BYTES
    # A body read in chunks may take up to twice its size while it grows.
    assert grown < 2 * budget + 16 * 1024 * 1024, f"{grown / 2**20:.0f} MiB held"
    assert refused >= HELD - budget // MAX_BODY_BYTES - 1, answers[:3]
    assert rx.refused["busy"] == refused
