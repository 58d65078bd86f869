"""The failed sign-in budget is one budget per account for every process serving the home.

Two real `stockade standin` processes (each the embedded server's REST API in a process of its
own) serve one home, and one of them is killed and started again: a guesser spreading wrong
passwords for one account over both, and over the restart, gets MAX_FAILURES checks in the
window, not MAX_FAILURES per process or per process start (issue: the table was per process,
`auth.Failures`, so N processes gave N times the guesses and a restart forgot every block)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from host.clock import SystemClock
from host.home import Home
from host.server import SYSTEM
from host.server.auth import MAX_FAILURES, set_password
from host.server.embedded import EmbeddedServer
from host.server.personal_tokens import ensure_service_user

STOCKADE = str(Path(sys.executable).parent / "stockade")
PASSWORD = "correct horse battery"


class _Standin:
    def __init__(self, home: Home, ready: Path) -> None:
        self.home, self.ready = home, ready
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> _Standin:
        self.ready.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [STOCKADE, "--home", str(self.home.root), "standin", "--port", "0",
             "--ready-file", str(self.ready)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read() if self.proc.stderr else b""
                raise RuntimeError(f"stand-in did not start: {err!r}")
            time.sleep(0.02)
        self.url = json.loads(self.ready.read_text())["url"]
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home").ensure()
    srv = EmbeddedServer(h.server_db, SystemClock())
    ensure_service_user(srv, "stockade")
    u = srv.users_create(SYSTEM, "vera", "Vera", "user")
    set_password(srv.db, u["id"], PASSWORD)
    srv.db.close()
    return h


def _answer(url: str, password: str) -> str:
    r = httpx.post(f"{url}/api/v1/login", json={"user": "vera", "password": password},
                   timeout=30)
    assert r.status_code == 401, r.text
    return str(r.json()["error"])


def test_two_processes_and_a_restart_share_one_budget(home: Home, tmp_path: Path) -> None:
    a = _Standin(home, tmp_path / "a.ready").start()
    b = _Standin(home, tmp_path / "b.ready").start()
    try:
        checked = 0
        answers: list[str] = []
        for i in range(4 * MAX_FAILURES):
            if i == MAX_FAILURES + 2:  # the guesser's favourite front is restarted by its host
                a.kill()
                a.start()
            answer = _answer((a, b)[i % 2].url, f"guess {i}")
            answers.append(answer)
            checked += answer == "Unauthorized"
        assert checked == MAX_FAILURES, answers
        assert set(answers[MAX_FAILURES:]) == {"error-login-blocked-for-user"}
        # the right password is refused on both, and after another restart, for the window
        b.kill()
        b.start()
        for s in (a, b):
            assert _answer(s.url, PASSWORD) == "error-login-blocked-for-user"
    finally:
        a.kill()
        b.kill()


def test_guesses_sent_at_once_get_no_more_than_the_budget(home: Home, tmp_path: Path) -> None:
    """Each attempt is counted before its password is checked: guesses racing each other, in
    one process and over two, are checked MAX_FAILURES times in all (before, every guess that
    arrived while the others were still in their scrypt check was checked too)."""
    a = _Standin(home, tmp_path / "a.ready").start()
    b = _Standin(home, tmp_path / "b.ready").start()
    try:
        with ThreadPoolExecutor(max_workers=3 * MAX_FAILURES) as pool:
            answers = list(pool.map(lambda i: _answer((a, b)[i % 2].url, f"guess {i}"),
                                    range(3 * MAX_FAILURES)))
        assert answers.count("Unauthorized") == MAX_FAILURES, answers
    finally:
        a.kill()
        b.kill()
