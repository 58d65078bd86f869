"""A full disk under the server's store, seen through the REST API (issue 26, "Faults"): every
write is refused with a documented status (503) and Rocket.Chat's error shape, the log gets one
line and no traceback, reads still answer, and writes work again once space is back.

The disk is real: the same small tmpfs approach as test_disk_full.py (SQLite itself answers
"database or disk is full"). Also here, sharing this file's app and policy: a `rest.call` on a
route with no bridge action (`POST livechat/department`, its app user a livechat manager), killed
between the server's answer and its outcome record."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from apphelp import install, write_app, write_policy
from diskhelp import fill, move_onto, small_disk

from host.bench.rest_http import serving
from host.clock import SystemClock
from host.home import Home
from host.runtime import Host, HostConfig
from host.server.embedded import EmbeddedServer
from host.server.personal_tokens import ensure_service_user
from host.server.principals import SYSTEM
from host.server.rest import Ctx, RestDispatcher, RestRoute


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_rest_writes_on_a_full_disk_are_clean_503s(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    home = Home(tmp_path / "home").ensure()
    # the server's data in a server.db of its own (a home made before its tables moved into
    # host.db), so only the server's store fills; its schema, before the move
    EmbeddedServer(home.root / "server.db", SystemClock()).close()
    with small_disk(tmp_path / "disk") as disk:
        move_onto(home.server_db, disk / "server.db")
        server = EmbeddedServer(home.server_db, SystemClock())
        admin, token = ensure_service_user(server, "ops")
        headers = {"X-User-Id": admin["id"], "X-Auth-Token": token}
        with serving(server) as (base, _srv, _uv), \
                httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            fillers = fill(disk)
            caplog.clear()
            with caplog.at_level(logging.INFO):
                answers = [client.post("/api/v1/users.create", json={
                    "username": f"full-{i}", "name": "Full", "email": f"f{i}@example.com",
                    "password": "a-long-enough-password"}) for i in range(3)]
                visitor = client.post("/api/v1/livechat/visitor",
                                      json={"visitor": {"token": "visitor-disk-full", "name": "V"}})
            for r in [*answers, visitor]:
                assert r.status_code == 503, r.text
                body = r.json()
                assert body["success"] is False and body["errorType"] == "error-disk-full"
                assert "disk full" in body["error"]
            records = [rec for rec in caplog.records if rec.name.startswith("stockade")]
            assert len(records) == 4, [rec.getMessage() for rec in records]
            assert all(rec.exc_info is None and "disk full" in rec.getMessage()
                       for rec in records)
            assert "Traceback" not in caplog.text
            # reads still answer
            assert client.get("/api/v1/me").status_code == 200
            for f in fillers:
                f.unlink()
            ok = client.post("/api/v1/users.create", json={
                "username": "after-space", "name": "After", "email": "a@example.com",
                "password": "a-long-enough-password"})
            assert ok.status_code == 200, ok.text
        server.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_request_that_wrote_a_step_before_the_disk_filled_is_not_a_503(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # 503 promises "nothing was written" (a client may retry, the rest.call bridge refunds the
    # unit). A handler whose first write committed and whose second met the full disk did
    # part of its work: it must answer 500, with one log line saying so.
    home = Home(tmp_path / "home").ensure()
    EmbeddedServer(home.root / "server.db", SystemClock()).close()  # its own file, as above
    with small_disk(tmp_path / "disk") as disk:
        move_onto(home.server_db, disk / "server.db")
        server = EmbeddedServer(home.server_db, SystemClock())
        fillers: list[Path] = []

        def two_steps(ctx: Ctx) -> dict[str, Any]:
            with ctx.server.db.write() as c:
                c.execute("CREATE TABLE IF NOT EXISTS scratch (v BLOB)")
                c.execute("INSERT INTO scratch VALUES (x'00')")
            fillers.extend(fill(disk))
            with ctx.server.db.write() as c:
                c.execute("INSERT INTO scratch VALUES (?)", (b"\1" * 200_000,))
            return {}

        def one_step(ctx: Ctx) -> dict[str, Any]:
            with ctx.server.db.write() as c:
                c.execute("INSERT INTO scratch VALUES (?)", (b"\2" * 200_000,))
            return {}

        dispatcher = RestDispatcher(server, routes=(
            RestRoute("POST", "two.steps", two_steps, public=True),
            RestRoute("POST", "one.step", one_step, public=True)))
        caplog.clear()
        with caplog.at_level(logging.INFO):
            partial = dispatcher.call(None, "POST", "two.steps", body={})
            whole = dispatcher.call(None, "POST", "one.step", body={})
        assert partial[0] == 500, partial
        assert "part-way" in partial[1]["error"]
        assert whole[0] == 503 and whole[1]["errorType"] == "error-disk-full", whole
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("stockade")]
        assert len(lines) == 2 and "part-way" in lines[0] and "refused" in lines[1], lines
        assert "Traceback" not in caplog.text
        rows = server.db.conn().execute("SELECT count(*) FROM scratch").fetchone()[0]
        assert rows == 1  # the first step stayed written: "nothing was written" would be a lie
        for f in fillers:
            f.unlink()
        server.close()


REST_APP = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        r = ctx.rest.call("POST", "/api/v1/livechat/department",
                          {"department": {"name": event["name"]}})
        return [r["status"], r["body"].get("errorType"), r["body"].get("error")]
'''

REST_POLICY = '''
schema = 1
name = "restdisk"
[[rule]]
id = "department-route"
effect = "permit"
apps = ["caller"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["POST /api/v1/livechat/department"]
rest_fields = ["department"]
[[rule]]
id = "caller-read"
effect = "permit"
apps = ["caller"]
actions = ["livechat.read"]
[[quota]]
id = "caller-rest-rate"
apps = ["caller"]
action = "rest.call"
limit = 5
window = "1h"
'''


def make_manager(host: Host) -> None:
    """The route's role for the app's own user (`POST livechat/department` is a manager's)."""
    rec = host.installs.get(next(iter(host.runners)))
    assert rec is not None and rec.app_user_id
    host.server.roles_assign(SYSTEM, rec.app_user_id, "livechat-manager")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_rest_call_refused_for_a_full_disk_gets_its_unit_back(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    EmbeddedServer(home.root / "server.db", SystemClock()).close()  # its own file, as above
    write_policy(home, "restdisk", REST_POLICY)
    install(home, write_app(tmp_path / "apps", "caller", ["livechat.read", "server.rest"],
                            ["livechat.room_started"], REST_APP))
    with small_disk(tmp_path / "disk") as disk:
        move_onto(home.server_db, disk / "server.db")
        with Host(home, config=HostConfig(watch=False)) as host:
            runner = next(iter(host.runners.values()))
            make_manager(host)
            first = runner.submit("livechat.room_started", {"name": "dep-one"}, 15.0).result(30)
            assert first[:2] == [200, None], first
            fillers = fill(disk)
            full = runner.submit("livechat.room_started", {"name": "dep-two"}, 15.0).result(30)
            assert full[:2] == [503, "error-disk-full"], full
            outcome = [e.body for e in host.ledger.audit.tail(50)
                       if e.body.get("kind") == "outcome"][-1]
            assert outcome["status"] == 503 and outcome["refunded"] is True, outcome
            key = f"install:{runner.install_id}:rest.call#caller-rest-rate"
            assert host.ledger.quota_state(key, 5, 3600.0).used == 1  # the 503's unit is back
            for f in fillers:
                f.unlink()


def test_a_crashed_unmapped_rest_call_keeps_its_unit_as_outcome_unknown(tmp_path: Path) -> None:
    # A route with no bridge action writes without recording the decision's op_id (or under
    # derived ones), so "the server has no op with this id" does not prove "not applied": the
    # restart must not refund it. Here the write did happen (the department exists).
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "restdisk", REST_POLICY)
    install(home, write_app(tmp_path / "apps", "caller", ["livechat.read", "server.rest"],
                            ["livechat.room_started"], REST_APP))
    worker = Path(__file__).with_name("rest_crash_worker.py")
    done = subprocess.run([sys.executable, str(worker), str(home.root)], timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    with Host(home, config=HostConfig(watch=False)) as host:  # start() settles
        assert host.ledger.pending_intents() == []
        settled = [e.body for e in host.ledger.audit.tail(50) if e.body.get("reconciled")]
        assert len(settled) == 1 and settled[0]["action"] == "rest.call", settled
        assert settled[0]["ok"] is False and settled[0]["code"] == "outcome_unknown"
        assert not settled[0].get("refunded")
        install_id = next(iter(host.runners))
        key = f"install:{install_id}:rest.call#caller-rest-rate"
        assert host.ledger.quota_state(key, 5, 3600.0).used == 1
        assert "dep-crash" in {d["name"] for d in host.server.list_departments()}
