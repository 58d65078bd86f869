"""The REST front (`serve --rest-process`, `host.server.front`): the REST API in a process of
its own, over real HTTP on loopback, beside a real host with confined apps. What it must keep:
the apps see every event a REST write commits, every message a visitor sends still passes the
apps' pre-send hooks (and fails closed with no verdict), and neither process serves without the
other."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apphelp import install, write_app, write_policy
from pghelp import until
from servehelp import REPO

from host.cli.serve_front import MAX_RESTARTS
from host.clock import SystemClock
from host.home import Home
from host.runtime import Host, HostConfig
from host.server.auth import set_password
from host.server.embedded import EmbeddedServer
from host.server.errors import Prevented
from host.server.front import RestFront
from host.server.frontlink import MAX_FRAME_BYTES, Link, LinkBroken
from host.server.listen import tcp_listener
from host.server.principals import SYSTEM

HOOKS = '''
from stockade import App

class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        text = event["message"]["text"]
        if "{mode}" == "tag":
            return {{"text": text + " [a]"}}
        if "{mode}" == "block" and "secret" in text:
            return {{"prevent": True, "reason": "no secrets"}}
        return None

    def on_livechat_room_started(self, ctx, event):
        ctx.store.put("started-" + event["room"]["id"], "seen")
'''

POLICY = '''
schema = 1
name = "front"

[[rule]]
id = "front"
effect = "permit"
apps = ["a-tagger", "b-blocker"]
actions = ["messages.read", "messages.send", "livechat.read", "persistence"]
'''


def _agent(server: EmbeddedServer) -> None:
    agent = server.users_create(SYSTEM, "agent-front", "F", "user")
    server.livechat_add_agent(SYSTEM, agent["id"])
    server.set_agent_status(agent["id"], "available")


def _visit(c: httpx.Client, token: str) -> str:
    assert c.post("/api/v1/livechat/visitor", json={"visitor": {"token": token}}).status_code \
        == 200
    r = c.get("/api/v1/livechat/room", params={"token": token})
    assert r.status_code == 200, r.text
    return str(r.json()["room"]["_id"])


def _say(c: httpx.Client, token: str, rid: str, text: str) -> httpx.Response:
    return c.post("/api/v1/livechat/message", json={"token": token, "rid": rid, "msg": text})


def _tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            out += _tree(int(child))
    return out


def _fd_targets(pid: int) -> set[str]:
    targets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.add(os.readlink(fd))
        except OSError:
            continue
    return targets


def test_the_apps_see_the_fronts_events_and_judge_its_messages(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "front", POLICY)
    for app_id, mode in (("a-tagger", "tag"), ("b-blocker", "block")):
        install(home, write_app(tmp_path / "apps", app_id,
                                ["messages.read", "messages.send", "livechat.read",
                                 "persistence"],
                                ["message.pre_send", "livechat.room_started"],
                                HOOKS.format(mode=mode)))
    sock = tcp_listener("127.0.0.1", 0)
    with Host(home, config=HostConfig(pre_send_deadline_s=2.0)) as h:
        assert isinstance(h.server, EmbeddedServer)
        _agent(h.server)
        front = RestFront(home, sock, server=h.server, pre_send=h.pre_send).start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}") as c:
                rid = _visit(c, "front-visitor")
                # The room was started in the front's process; the apps' handlers ran in theirs.
                until(lambda: h.event_counts.get("livechat.room_started") == 1,
                      "the room's event relayed to the host", 10)
                rec = h.installs.by_app("a-tagger")
                assert rec is not None
                until(lambda: h.persistence.get(rec.install_id, "started-" + rid) == "seen",
                      "a-tagger's room-started handler", 10)
                said = _say(c, "front-visitor", rid, "hello")
                assert said.status_code == 200, said.text
                assert said.json()["message"]["msg"] == "hello [a]"  # a-tagger's hook ran
                refused = _say(c, "front-visitor", rid, "my secret")
                assert refused.status_code == 400 and "b-blocker" in refused.text
            # Only the host and its front hold the link: an app that escaped its interpreter
            # finds no descriptor through which to forge an event or a verdict.
            assert front.link is not None and front.proc is not None
            assert not os.get_inheritable(front.link.sock.fileno())
            link_inodes = {f"socket:[{os.fstat(front.link.sock.fileno()).st_ino}]"} | {
                t for t in _fd_targets(front.proc.pid) if t.startswith("socket:")}
            for runner in h.runners.values():
                assert runner.child is not None
                for pid in _tree(runner.child.pid):
                    assert not link_inodes & _fd_targets(pid), runner.app_id
        finally:
            front.stop()
        texts = [m["text"] for m in h.server.messages_list(SYSTEM, rid)]
        assert texts == ["hello [a]"]
        assert h.event_counts.get("message.sent") == 1
    assert front.proc is not None and front.proc.returncode == 0


def test_no_verdict_from_the_host_in_time_prevents_the_message(tmp_path: Path) -> None:
    """The front fails closed: a host that does not answer the pre-send hook within the front's
    wait (here a hook that hangs) is a message not written, not one written unjudged."""
    home = Home(tmp_path / "home").ensure()
    server = EmbeddedServer(home.server_db, SystemClock())
    _agent(server)

    def hanging(message: dict[str, Any]) -> dict[str, Any] | None:
        time.sleep(3)
        return message

    sock = tcp_listener("127.0.0.1", 0)
    front = RestFront(home, sock, server=server, pre_send=hanging, hook_wait_s=0.5).start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}") as c:
            rid = _visit(c, "front-visitor")
            t0 = time.monotonic()
            r = _say(c, "front-visitor", rid, "judge me")
            assert r.status_code == 400 and "did not answer the pre-send hook" in r.text
            assert time.monotonic() - t0 < 2.5
    finally:
        front.stop()
    assert server.messages_list(SYSTEM, rid) == []


def test_a_prevented_verdict_crosses_with_the_app_that_gave_it(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    server = EmbeddedServer(home.server_db, SystemClock())
    _agent(server)

    def refusing(message: dict[str, Any]) -> dict[str, Any] | None:
        raise Prevented("the pre-send hook of shy did not answer in time", prevented_by="shy")

    sock = tcp_listener("127.0.0.1", 0)
    front = RestFront(home, sock, server=server, pre_send=refusing).start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}") as c:
            rid = _visit(c, "front-visitor")
            r = _say(c, "front-visitor", rid, "hi")
            assert r.status_code == 400 and "shy" in r.text
    finally:
        front.stop()
    assert server.messages_list(SYSTEM, rid) == []


def test_the_console_in_the_front_shows_the_revision_the_host_enforces(tmp_path: Path) -> None:
    """The console runs in the front; which policy revision the apps are decided with is the
    host's to say, asked over the link on each page."""
    home = Home(tmp_path / "home").ensure()
    server = EmbeddedServer(home.server_db, SystemClock())
    admin = server.users_create(SYSTEM, "operator", "Op", "user", roles=["admin"])
    set_password(server.db, admin["id"], "operator password")
    sock = tcp_listener("127.0.0.1", 0)
    revision = ["rev-one-1111"]
    front = RestFront(home, sock, server=server, enforced=lambda: revision[0],
                      entry="host.console.front_main").start()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with httpx.Client(base_url=url, timeout=10) as c:
            r = c.post("/console/login", data={"username": "operator",
                                               "password": "operator password"},
                       headers={"Origin": url})
            assert r.status_code in (200, 303), r.text
            assert "rev-one-1111" in c.get("/console/policy").text
            revision[0] = "rev-two-2222"
            assert "rev-two-2222" in c.get("/console/policy").text
    finally:
        front.stop()


def test_the_front_exits_when_its_host_goes(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    server = EmbeddedServer(home.server_db, SystemClock())
    sock = tcp_listener("127.0.0.1", 0)
    front = RestFront(home, sock, server=server).start()
    assert front.link is not None and front.proc is not None
    front.link.close()  # as the host's death closes its end
    assert front.proc.wait(15) == 0
    front.stop()


def _serve(home: Home, *flags: str) -> subprocess.Popen[str]:
    """`stockade serve --port 0 FLAGS` as an operator starts it, its stderr to read."""
    return subprocess.Popen(
        [sys.executable, "-c", "from host.cli.main import main; main()", "--home",
         str(home.root), "serve", "--port", "0", *flags],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=REPO)


def _fronts(proc: subprocess.Popen[str], said: list[str] | None = None,
            ) -> Iterator[tuple[int | None, int]]:
    """(the port serve printed, and each front's pid) as serve says them; every line it says
    goes to `said`."""
    assert proc.stderr is not None
    port = None
    for line in proc.stderr:
        if said is not None:
            said.append(line)
        if m := re.search(r"stockade server: http://127\.0\.0\.1:(\d+)/", line):
            port = int(m.group(1))
        if m := re.search(r"REST front: process (\d+)", line):
            yield port, int(m.group(1))


def _front_stops(home: Home) -> list[str]:
    """The details of the front's stops in the home's audit chain, oldest first."""
    con = sqlite3.connect(home.host_db)
    try:
        rows = [json.loads(b) for (b,) in con.execute("SELECT body FROM audit ORDER BY seq")]
    finally:
        con.close()
    return [str(r["detail"]) for r in rows
            if r.get("kind") == "supervisor" and r.get("event") == "front_stopped"]


def test_serve_starts_another_front_when_one_dies(tmp_path: Path) -> None:
    """A front that dies costs the requests in flight, not the service: serve starts another on
    the same listener, and the REST API answers again on the same port."""
    home = Home(tmp_path / "home").ensure()
    proc = _serve(home, "--rest-process", "--degraded")
    try:
        fronts = _fronts(proc)
        port, first = next(fronts)
        assert port is not None and first != proc.pid
        url = f"http://127.0.0.1:{port}/api/v1/info"
        assert httpx.get(url, timeout=10).json()["success"] is True
        os.kill(first, signal.SIGKILL)
        _, second = next(fronts)
        assert second != first and proc.poll() is None
        assert httpx.get(url, timeout=10).json()["success"] is True
        proc.terminate()
        assert proc.wait(30) == 0
        [stopped] = _front_stops(home)
        assert "exit code -9" in stopped and "another starts" in stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_starts_another_front_when_one_stops_answering(tmp_path: Path) -> None:
    """A front that hangs without exiting (here stopped with SIGSTOP) held the listener while
    nothing was answered, for good: serve waited only for its exit. Now, silent past
    --front-timeout, it is killed and another serves on the same port, the stop audited."""
    home = Home(tmp_path / "home").ensure()
    proc = _serve(home, "--rest-process", "--degraded", "--front-timeout", "2")
    stopped_front: list[int] = []

    def give_up() -> None:
        # No second front in time: end serve and the stopped front (which holds serve's stderr
        # too), so the wait for another front's line ends, failing.
        proc.kill()
        for pid in stopped_front:
            os.kill(pid, signal.SIGKILL)

    gone = threading.Timer(60, give_up)
    gone.start()
    try:
        fronts = _fronts(proc)
        port, first = next(fronts)
        assert port is not None
        stopped_front.append(first)
        url = f"http://127.0.0.1:{port}/api/v1/info"
        assert httpx.get(url, timeout=10).json()["success"] is True
        os.kill(first, signal.SIGSTOP)
        _, second = next(fronts)
        assert second != first and proc.poll() is None
        assert httpx.get(url, timeout=10).json()["success"] is True
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)  # killed and reaped, not left stopped
        proc.terminate()
        assert proc.wait(30) == 0
        [stopped] = _front_stops(home)
        assert "no answer to GET /api/info" in stopped and "another starts" in stopped
    finally:
        gone.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_stops_when_its_front_keeps_dying(tmp_path: Path) -> None:
    """`serve` never runs apps no request can reach: a front that stops more than
    MAX_RESTARTS times in the window stops it (exit 1), saying so."""
    home = Home(tmp_path / "home").ensure()
    proc = _serve(home, "--rest-process", "--degraded")
    try:
        killed, said = 0, []
        for _port, pid in _fronts(proc, said):
            os.kill(pid, signal.SIGKILL)
            killed += 1
        assert killed == MAX_RESTARTS + 1
        assert proc.wait(30) == 1
        text = "".join(said)
        assert text.count("starting another") == MAX_RESTARTS
        assert f"the REST front stopped {MAX_RESTARTS + 1} times" in text
        stops = _front_stops(home)
        assert len(stops) == MAX_RESTARTS + 1 and stops[-1].endswith("serve stops")
        verify = subprocess.run(
            [sys.executable, "-c", "from host.cli.main import main; main()", "--home",
             str(home.root), "audit", "verify"], capture_output=True, text=True, cwd=REPO,
            timeout=60, check=False)
        assert verify.returncode == 0, verify.stderr  # the stops are in the chain, and it holds
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_rest_in_host_serves_from_its_own_process(tmp_path: Path) -> None:
    """`--rest-in-host`: the REST API in serve's own process, no front; `--widget-rate` and
    `--trusted-proxy` reach it there too."""
    home = Home(tmp_path / "home").ensure()
    proc = _serve(home, "--rest-in-host", "--no-apps", "--widget-rate", "12",
                  "--trusted-proxy", "127.0.0.1")
    try:
        assert proc.stderr is not None
        port = None
        for line in proc.stderr:
            assert "REST front" not in line
            if m := re.search(r"stockade server: http://127\.0\.0\.1:(\d+)/", line):
                port = int(m.group(1))
            if "sign in:" in line:
                break
        assert port is not None, f"exit {proc.poll()}"
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/info", timeout=10).status_code == 200
        # One registration a minute per visitor, each visitor the address the trusted proxy
        # (this loopback client) appended.
        answers = [httpx.post(f"http://127.0.0.1:{port}/api/v1/livechat/visitor", timeout=10,
                              headers={"X-Forwarded-For": f"203.0.113.{i % 2}"},
                              json={"visitor": {"token": f"widget-v{i}", "name": "v"}}).status_code
                   for i in range(3)]
        assert answers == [200, 200, 429], answers
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert children == []  # no front (and no apps: --no-apps)
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_link_refuses_an_oversized_frame() -> None:
    a, b = socket.socketpair()
    ours, theirs = Link(a), Link(b)
    with pytest.raises(ValueError, match="over"):
        ours.send({"t": "ev", "pad": "x" * MAX_FRAME_BYTES})
    a.sendall((MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
    with pytest.raises(LinkBroken, match="over"):
        theirs.recv()
    ours.close()
    theirs.close()
