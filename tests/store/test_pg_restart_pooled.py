"""After a restart of the shared PostgreSQL store, the calls made once it is back succeed.

Every connection a host held (one per thread, and the idle ones in its pool) was ended by the
restart, but the host only learnt it when it next used one: the first write transaction on each
failed its BEGIN with the driver's error, which escaped `Gate.handle` as a raw store error. So an
app saw one failed call (nothing reserved) per connection the host had open. A BEGIN that finds
its connection broken has sent nothing of its transaction, so it now opens a fresh connection
and begins once more; a failure after the BEGIN is still never retried (it may have applied).

A private cluster, since this test restarts it (`pghelp.Cluster`).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from gatehelp import QUOTA_LIMIT, build_rig, install_fuzz_app
from pghelp import Cluster, admits, private_fixture, until  # noqa: F401 - a fixture

from host.clock import SystemClock
from host.errors import GateError
from host.gate.gate import Session
from host.home import Home
from host.migrate import migrate
from host.runtime import Host, HostConfig

# Threads making calls at once: each holds a connection of its own, as a host's runners do.
THREADS = 3


def _answer(host: Host, session: Session, action: str, args: dict[str, Any]) -> str:
    """What the app would see of one call: "ok", the gate's typed refusal, or a raw error that
    escaped the gate."""
    try:
        host.gate.handle(session, action, args)
    except GateError as exc:
        return f"{exc.code}: {exc.message}"
    except Exception as exc:  # a raw store error escaping the gate
        return f"escaped {type(exc).__name__}: {exc}"
    return "ok"


def _on_each_thread(pool: ThreadPoolExecutor, call: Callable[[str], str],
                    names: list[str]) -> list[str]:
    """`call(name)` for each name, each on a thread of its own (a barrier keeps one thread
    from taking two)."""
    together = threading.Barrier(len(names))

    def one(name: str) -> str:
        together.wait(30)
        return call(name)
    return list(pool.map(one, names))


def test_calls_after_a_store_restart_succeed_on_every_connection(
        tmp_path: Path, private: Cluster) -> None:
    url = private.fresh_url()
    migrate(url)
    home = Home(tmp_path / "home", url).ensure()
    install_fuzz_app(home)
    policy = home.policies_dir / "gatehelp.toml"  # room for every create this test makes
    policy.write_text(policy.read_text().replace(f"limit = {QUOTA_LIMIT}\n", "limit = 100\n"))
    host = Host(home, config=HostConfig(watch=False, use_zygote=False)).start()
    pool = ThreadPoolExecutor(THREADS)
    try:
        rig = build_rig(home, SystemClock())

        def create(name: str) -> str:
            return _answer(host, rig.session, "users.create",
                           {"username": name, "name": name, "type": "bot"})

        before = _on_each_thread(pool, create, [f"before-{i}" for i in range(THREADS)])
        assert before == ["ok"] * THREADS, before
        private.restart(down_s=1.0)
        until(lambda: admits(host), "the host to admit calls again", 30.0)
        after = _on_each_thread(pool, create, [f"after-{i}" for i in range(THREADS)])
        assert after == ["ok"] * THREADS, after
        with psycopg.connect(url, autocommit=True) as c:
            made = {str(r[0]) for r in c.execute(
                "SELECT username FROM users WHERE created_by_app IS NOT NULL")}
        assert made == {f"{w}-{i}" for w in ("before", "after") for i in range(THREADS)}, made
    finally:
        pool.shutdown(wait=True)
        host.stop()


def test_reads_after_a_store_restart_succeed_on_every_connection(
        tmp_path: Path, private: Cluster) -> None:
    """A read runs outside any transaction, on its thread's connection: no BEGIN found the
    connection broken and began again, so the first read on each connection after a restart
    failed (the app saw one refused read per connection). A plain SELECT that fails because its
    connection is gone sent nothing that could have applied: it runs once more, on a fresh one."""
    url = private.fresh_url()
    migrate(url)
    home = Home(tmp_path / "home", url).ensure()
    install_fuzz_app(home)
    host = Host(home, config=HostConfig(watch=False, use_zygote=False)).start()
    pool = ThreadPoolExecutor(THREADS)
    try:
        rig = build_rig(home, SystemClock())
        me = rig.session.caller.app_user_id

        def read(_name: str) -> str:
            return _answer(host, rig.session, "users.get", {"user_id": me})

        names = [f"r-{i}" for i in range(THREADS)]
        assert _on_each_thread(pool, read, names) == ["ok"] * THREADS
        private.restart(down_s=1.0)
        until(lambda: admits(host), "the host to admit calls again", 30.0)
        after = _on_each_thread(pool, read, names)
        assert after == ["ok"] * THREADS, after
    finally:
        pool.shutdown(wait=True)
        host.stop()
