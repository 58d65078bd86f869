"""A listener keeps at most `connection_cap()` connections open (host/server/listen.py).

Each connection holds one of the process's file descriptors, and a listener may run in the apps'
host itself (`serve --rest-in-host`; `serve --server rocketchat`'s webhook receiver and console).
Connections that ask nothing are closed only after the header deadline (10 s), and on loopback
thousands open in a second: before the cap they took every descriptor the host had (`accept`
failing with EMFILE, and with it every store, pipe and app child the host would open). What must
hold: past the cap a connection is answered 503 and closed at once, the process's descriptors
stay within the cap plus its own, and once the flood ends the listener serves again.
"""
from __future__ import annotations

import os
import re
import resource
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from servehelp import REPO

from host.home import Home
from host.server import listen

FD_LIMIT = 512  # the serving process's RLIMIT_NOFILE: its cap is a quarter of it
FLOOD = 600  # more connections than the process has descriptors


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_the_cap_is_a_quarter_of_the_descriptor_limit_at_most(monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _what: (400, 400))
    assert listen.connection_cap() == 100
    monkeypatch.setattr(resource, "getrlimit", lambda _what: (1 << 20, 1 << 20))
    assert listen.connection_cap() == listen.MAX_CONNECTIONS
    monkeypatch.setattr(resource, "getrlimit", lambda _what: (8, 8))
    assert listen.connection_cap() == 16


def test_a_flood_of_idle_connections_cannot_take_the_hosts_descriptors(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    log = tmp_path / "serve.err"  # a file, not a pipe: a full pipe would stall the server
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from host.cli.main import main; main()", "--home",
             str(home.root), "serve", "--port", "0", "--rest-in-host"],
            stderr=err, stdout=subprocess.DEVNULL, text=True, cwd=REPO, preexec_fn=_limit_fds)
    flood: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while not (m := re.search(r"stockade server: http://127\.0\.0\.1:(\d+)/",
                                  log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        port = int(m.group(1))
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/info", timeout=10).status_code == 200
        before = _open_fds(proc.pid)
        cap = FD_LIMIT // 4
        peak = before
        for i in range(FLOOD):
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            if i % 25 == 0:
                peak = max(peak, _open_fds(proc.pid))
        # Every connection past the cap was answered 503 and closed by the server; the others
        # are held open, waiting for a request (never readable).
        answers: dict[socket.socket, bytes] = {}
        deadline = time.monotonic() + 10
        while len(answers) < FLOOD - cap and time.monotonic() < deadline:
            ready, _, _ = select.select([s for s in flood if s not in answers], [], [], 0.5)
            if not ready:
                break
            for s in ready:
                try:
                    answers[s] = s.recv(200)
                except ConnectionResetError:
                    answers[s] = b""
        refused = sum(a.startswith(b"HTTP/1.1 503 ") for a in answers.values())
        assert refused >= FLOOD - cap, refused
        # The refused ones' descriptors go as their transports finish closing.
        deadline = time.monotonic() + 10
        while (held := _open_fds(proc.pid)) > before + cap + 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held <= before + cap + 8, (before, held)
        # Never out of descriptors, even while the flood was being accepted and refused.
        assert peak < FD_LIMIT, (before, peak)
        assert "Too many open files" not in log.read_text()
        for s in flood:
            s.close()
        flood.clear()
        # The flood gone, the listener serves again.
        deadline = time.monotonic() + 10
        while True:
            r = httpx.get(f"{base}/api/info", timeout=10)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert r.status_code == 200
    finally:
        for s in flood:
            s.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
