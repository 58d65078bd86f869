"""A full disk under the server's store, seen through the REST API (issue 26, "Faults"): every
write is refused with a documented status (503) and Rocket.Chat's error shape, the log gets one
line and no traceback, reads still answer, and writes work again once space is back.

The disk is real: the same small tmpfs approach as test_disk_full.py (SQLite itself answers
"database or disk is full")."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import httpx
import pytest
from test_disk_full import fill, move_onto, small_disk

from host.bench.rest_http import serving
from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.personal_tokens import ensure_service_user


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_rest_writes_on_a_full_disk_are_clean_503s(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    home = Home(tmp_path / "home").ensure()
    EmbeddedServer(home.server_db, SystemClock()).close()  # the schema, before the move
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
