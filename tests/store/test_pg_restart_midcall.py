"""A create whose server write meets a restart of the shared PostgreSQL store.

The server write fails (its connection ended with the server) and the host asks at once whether
it applied; the store is still down, so it cannot say, and the call's intent was left pending:
its quota unit and its seat stayed reserved for as long as that host served (no host settles a
live host's calls, and this host never asked again), so a quota of three admitted two creates
until the host was restarted. Now the host notes such a call and its upkeep asks again once the
store answers: not applied, its unit comes back.

A private cluster, since this test restarts it (`pghelp.Cluster`).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import psycopg
from gatehelp import QUOTA_LIMIT, add_seat_ceiling, build_rig, install_fuzz_app
from pghelp import Cluster, admits, private_fixture, stockade, until  # noqa: F401 - a fixture

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.migrate import migrate
from host.runtime import Host, HostConfig
from host.store.base import PgError


def _down(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=1).close()
    except psycopg.OperationalError:
        return True
    return False


def _pending(url: str) -> list[Any]:
    with psycopg.connect(url, autocommit=True) as c:
        return c.execute("SELECT op_id FROM audit_intents").fetchall()


def test_a_create_cut_by_a_store_restart_is_settled_while_its_host_serves(
        tmp_path: Path, private: Cluster) -> None:
    url = private.fresh_url()
    migrate(url)
    home = Home(tmp_path / "home", url).ensure()
    install_fuzz_app(home)
    add_seat_ceiling(home)
    host = Host(home, config=HostConfig(watch=False, use_zygote=False)).start()
    try:
        rig = build_rig(home, SystemClock())

        def create(name: str) -> str:
            try:
                host.gate.handle(rig.session, "users.create",
                                 {"username": name, "name": name, "type": "bot"})
            except GateError as exc:
                return exc.code
            except PgError:  # a raw store error escaping the gate
                return "store"
            return "ok"

        for i in range(QUOTA_LIMIT - 1):
            assert create(f"q-{i}") == "ok"
        real = host.server.users_create
        restart = threading.Thread(target=private.restart, kwargs={"down_s": 2.0})

        def cut_by_restart(*a: Any, **kw: Any) -> Any:
            restart.start()  # the store goes down between the admission and the server write
            until(lambda: _down(url), "the store to stop", 30.0)
            return real(*a, **kw)

        host.server.users_create = cut_by_restart  # type: ignore[method-assign]
        assert create("q-cut") == "internal"
        host.server.users_create = real  # type: ignore[method-assign]
        restart.join(60)
        until(lambda: admits(host), "the host to admit calls again", 30.0)
        # Within a few upkeep rounds the host asks again: not applied, the unit comes back.
        until(lambda: not _pending(url), "the cut create to be settled", 20.0)
        answers = [create(f"q-after{i}") for i in range(4)]
        # (a connection opened before the restart, found broken at a BEGIN, is replaced there:
        # no call fails for it; test_pg_restart_pooled.py)
        assert answers == ["ok"] + ["quota_exceeded"] * 3, answers
        with psycopg.connect(url, autocommit=True) as c:
            users = sorted(str(r[0]) for r in c.execute(
                "SELECT username FROM users WHERE created_by_app IS NOT NULL"))
            bodies = [json.loads(r[0]) for r in c.execute("SELECT body FROM audit ORDER BY seq")]
        assert "q-cut" not in users and len(users) == QUOTA_LIMIT, users
        settled = [(b["ok"], b["code"], b["refunded"]) for b in bodies if b.get("reconciled")]
        assert settled == [(False, "not_applied", True)], settled
    finally:
        host.stop()
    verify = stockade(home, "audit", "verify", "--json")  # one chain, through the restart
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["ok"] is True
