"""A connection flood is no hang: the front probe counts the listener's 503 as an answer
(`host/server/frontprobe.py`).

`serve` kills a REST front that leaves its probe (`GET /api/info` over the clients' listener)
unanswered for `--front-timeout` seconds, and stops serving (the apps too) after more than
`MAX_RESTARTS` stops in a minute. Past its connection cap a live front answers every new
connection, the probe's included, with a 503 written by its own event loop. The probe counted
only a 200: anonymous clients holding the cap's worth of idle connections had a healthy front
SIGKILLed every `--front-timeout` seconds (its requests in flight cut), and with a timeout of
2 s `serve` exited 1 after 26 s (seen with a real `serve` holding 200 idle connections, its
descriptor limit 512). A front that writes nothing (stopped, spinning, deadlocked) is still
silence."""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pytest

from host.clock import SystemClock
from host.server import listen
from host.server.embedded import EmbeddedServer
from host.server.frontprobe import FrontProbe, answers

CAP = 16  # the listener's connection cap in this test (its least)


def test_a_front_past_its_connection_cap_still_answers_its_probe(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listen, "connection_cap", lambda: CAP)
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    flood: list[socket.socket] = []
    with listen.serving(server) as (base, _srv, _uv):
        port = int(base.rsplit(":", 1)[1])
        try:
            flood.extend(socket.create_connection(("127.0.0.1", port)) for _ in range(CAP + 4))
            # The flood holds the cap: a client is refused, by the live front itself.
            assert httpx.get(f"{base}/api/info", timeout=5).status_code == 503
            hung: list[str] = []
            seen = threading.Event()

            def on_hung(why: str) -> None:
                hung.append(why)
                seen.set()

            probe = FrontProbe(("127.0.0.1", port), 0.6, on_hung).start()
            try:
                # Before: "no answer to GET /api/info for 1 s" at the limit's first probe past it.
                assert not seen.wait(1.5), hung
            finally:
                probe.stop()
            assert answers(("127.0.0.1", port), 2.0)
        finally:
            for s in flood:
                s.close()


def test_a_listener_nobody_serves_is_silence() -> None:
    """The control: connections queued on a listener no process accepts get no answer."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        assert not answers(("127.0.0.1", silent.getsockname()[1]), 0.3)
