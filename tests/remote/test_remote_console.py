"""The console served against a Rocket.Chat workspace (issue 21: "console vs workspace"):
`stockade serve --server rocketchat` mounts it beside the webhook receiver, the workspace's
admins sign in with their workspace password (checked by the workspace's `/api/v1/login`,
whose token is revoked at once), anyone else is refused, and the pages read the host's stores
and the seats Stockade keeps for the workspace. The workspace is the stand-in process."""
from __future__ import annotations

import queue
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from console.faulthelp import OTHERS_WAIT_S, probe
from rchelp import STOCKADE, Standin, connect

from host.clock import SystemClock
from host.home import Home
from host.server.auth import set_password
from host.server.embedded import EmbeddedServer
from host.server.principals import SYSTEM

PASSWORD = "a-long-workspace-password"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Standin, str]]:
    root = tmp_path_factory.mktemp("console")
    s = Standin(root)
    srv = EmbeddedServer(s.home.server_db, SystemClock())
    admin = srv.users_create(SYSTEM, "ws-admin", "Admin", "user", roles=["admin"])
    plain = srv.users_create(SYSTEM, "ws-agent", "Agent", "user")
    for u in (admin, plain):
        set_password(srv.db, u["id"], PASSWORD)
    srv.db.close()
    s.start()
    home = Home(root / "h").ensure()
    connect(home, s)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([STOCKADE, "--home", str(home.root), "serve", "--server",
                             "rocketchat", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stderr or ()],
                         daemon=True).start()
        seen = []
        while not any("console: http://127.0.0.1:" in ln for ln in seen):
            seen.append(lines.get(timeout=30))  # queue.Empty: serve never offered a console
        yield f"http://127.0.0.1:{port}", s, admin["id"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        s.stop()


def _sign_in(base: str, who: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=20) as c:
        c.get("/console/login")
        return c.post("/console/login", data={"username": who, "password": password},
                      headers={"Origin": base})


def _login_tokens(s: Standin, user_id: str) -> int:
    with sqlite3.connect(s.home.server_db) as db:
        return int(db.execute("SELECT count(*) FROM personal_tokens WHERE user_id = ? AND "
                              "kind = 'login'", (user_id,)).fetchone()[0])


def test_a_workspace_admin_signs_in_and_sees_the_pages(
        served: tuple[str, Standin, str]) -> None:
    base, s, admin_id = served
    with httpx.Client(base_url=base, timeout=20) as c:
        assert c.get("/console/apps").headers.get("location", "").endswith("/console/login")
        r = c.post("/console/login", data={"username": "ws-admin", "password": PASSWORD},
                   headers={"Origin": base})
        assert r.status_code == 303 and r.headers["location"] == "/console/apps", r.text
        apps = c.get("/console/apps")
        assert apps.status_code == 200 and "ws-admin" in apps.text
        quotas = c.get("/console/quotas")
        # the seats Stockade keeps for the workspace (none created by an app yet)
        assert quotas.status_code == 200 and "Seats: 0 active app-created" in quotas.text
    # the workspace token its login minted is gone: the console holds none
    assert _login_tokens(s, admin_id) == 0


def test_wrong_passwords_and_non_admins_are_refused(served: tuple[str, Standin, str]) -> None:
    base, _s, _admin = served
    assert _sign_in(base, "ws-admin", "not-the-password").status_code == 401
    agent = _sign_in(base, "ws-agent", PASSWORD)
    assert agent.status_code == 401 and "not an operator" in agent.text
    assert _sign_in(base, "nobody-here", PASSWORD).status_code == 401


def test_repeated_failures_are_blocked_before_the_workspace_is_asked(
        served: tuple[str, Standin, str]) -> None:
    base, _s, _admin = served
    codes = [_sign_in(base, "ws-blocked", f"guess-{i}").status_code for i in range(12)]
    assert codes[0] == 401 and codes[-1] == 429, codes


def test_a_sign_in_without_the_consoles_origin_is_refused(
        served: tuple[str, Standin, str]) -> None:
    base, _s, _admin = served
    with httpx.Client(base_url=base, timeout=20) as c:
        r = c.post("/console/login", data={"username": "ws-admin", "password": PASSWORD},
                   headers={"Origin": "http://evil.example"})
    assert r.status_code == 403


# How long the workspace holds its answer to the session check's users.info: the probe's other
# request starts 0.3 s in, so a check made on the event loop holds it for 1.3 s at least.
SLOW_CHECK_S = 1.6


def test_a_slow_workspace_session_check_holds_no_other_request(
        served: tuple[str, Standin, str]) -> None:
    """Each signed-in request asks the workspace whether its user is still an admin
    (users.info). With the workspace slow to answer it, the request waits, but the front's
    other requests (its sign-in page, the webhook receiver beside it) do not: the check runs
    off the event loop. Before, both waited 1.3 s behind a 1.6 s answer (4.2 s behind a hung
    workspace, the client's deadline)."""
    base, s, _admin = served
    hook: list[float] = []

    def webhook() -> None:  # refused (no secret): its answer time is what counts
        time.sleep(0.3)
        t = time.monotonic()
        httpx.post(f"{base}/rocketchat/webhook", json={}, timeout=30)
        hook.append(time.monotonic() - t)

    with httpx.Client(base_url=base, timeout=20) as c:
        c.get("/console/login")
        r = c.post("/console/login", data={"username": "ws-admin", "password": PASSWORD},
                   headers={"Origin": base})
        assert r.status_code == 303, r.text
        s.fault("users.info", "delay-before", SLOW_CHECK_S, times=1)
        receiver = threading.Thread(target=webhook)
        receiver.start()
        try:
            got = probe(c, "GET", "/console/apps")
        finally:
            receiver.join()
            s.clear_faults()
    assert got.response is not None and got.response.status_code == 200
    assert got.took_s >= SLOW_CHECK_S - 0.1  # the check did wait for the slow workspace
    assert got.others_wait_s < OTHERS_WAIT_S, got
    assert hook[0] < OTHERS_WAIT_S, hook
