"""Two hosts on one home (DESIGN rule 8: quotas are shared by every host process).

A host that starts settles the calls it finds audited but unfinished. Another live host's call
in flight looks exactly like that, so a second host used to refund it as "not applied" while the
first was about to apply it: the window then held N + 1 creations. `host.ledger.lease` lets a host
settle only when no other host serves the home. These tests attack that with a real second host
started in the middle of a real create, and with a host process killed mid-call.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from audithelp import audit_bodies
from gatehelp import (
    QUOTA_LIMIT,
    QUOTA_WINDOW_S,
    add_seat_ceiling,
    build_rig,
    install_fuzz_app,
)

from host.clock import SystemClock
from host.doctor import state_checks
from host.home import Home
from host.ledger.audit import AuditRecord
from host.ledger.lease import HomeLease, LeaseError, others_serving
from host.runtime import Host, HostConfig
from host.server.embedded import EmbeddedServer

QUIET = HostConfig(watch=False, use_zygote=False)  # no apps run here: nothing to spawn




def _quota_key(home: Home) -> str:
    decision = next(b for b in audit_bodies(home) if b.get("action") == "users.create"
                    and b.get("kind") == "decision")
    return str(decision["quota"][0]["key"])


def _home(tmp_path: Path) -> Home:
    """The fuzz app (may create bots, 3 per window) and a seat ceiling, so a create reserves a
    quota unit and a seat. The server's data in a server.db of its own (a home made before its
    tables moved into host.db): a create is then three commits, and a call in flight between
    them is what a second host must leave alone or settle. (With the tables in host.db nothing
    is ever in flight between commits: `test_crash_consistency.py`'s `one_tx` tests.)"""
    home = Home(tmp_path / "home").ensure()
    EmbeddedServer(home.root / "server.db", SystemClock()).close()
    install_fuzz_app(home)
    add_seat_ceiling(home)
    return home


def test_second_host_leaves_a_create_in_flight_alone(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with Host(home, config=QUIET) as first:
        assert first.settled_at_start
        rig = build_rig(home, SystemClock())  # a session for the app; calls go to `first.gate`
        # Hold the first host's create between its admit (unit reserved, decision durable) and
        # the server write, as a slow server would.
        real = first.server.users_create
        entered, go = threading.Event(), threading.Event()

        def slow_create(*a: Any, **kw: Any) -> Any:
            entered.set()
            assert go.wait(20)
            return real(*a, **kw)

        first.server.users_create = slow_create  # type: ignore[method-assign]
        result: list[Any] = []
        call = threading.Thread(target=lambda: result.append(first.gate.handle(
            rig.session, "users.create",
            {"username": "inflight", "name": "In Flight", "type": "bot", "roles": ["bot"]})))
        call.start()
        assert entered.wait(20)

        with Host(home, config=QUIET) as second:
            # The first host serves, so nothing is settled: its unit and seat stay reserved.
            key = _quota_key(home)
            assert second.ledger.quota_state(key, QUOTA_LIMIT, QUOTA_WINDOW_S).used == 1
            assert second.ledger.seats_in_use(second.server.seats_in_use) == 1
            assert [i.action for i in second.ledger.pending_intents()] == ["users.create"]
            assert not second.settled_at_start

        go.set()
        call.join(20)
        assert result and result[0]["username"] == "inflight"
        # Exact: one user created, one unit spent, one seat; no "reconciled" settlement.
        assert first.ledger.quota_state(key, QUOTA_LIMIT, QUOTA_WINDOW_S).used == 1
        assert first.ledger.seats_in_use(first.server.seats_in_use) == 1
        assert first.ledger.pending_intents() == []
    outcomes = [b for b in audit_bodies(home) if b.get("kind") == "outcome"]
    assert [(o["ok"], o.get("reconciled", False), o["refunded"]) for o in outcomes] == [
        (True, False, False)]


_DYING_HOST = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from gatehelp import build_rig
    from host.clock import SystemClock
    from host.home import Home
    from host.runtime import Host, HostConfig

    home = Home(Path({home!r}))
    host = Host(home, config=HostConfig(watch=False, use_zygote=False)).start()
    rig = build_rig(home, SystemClock())
    host.server.users_create = lambda *a, **kw: time.sleep(3600)  # killed in here
    print("READY", flush=True)
    host.gate.handle(rig.session, "users.create",
                     {{"username": "lost", "name": "Lost", "type": "bot", "roles": ["bot"]}})
""")


def test_a_killed_hosts_call_is_settled_by_the_next_host_alone(tmp_path: Path) -> None:
    home = _home(tmp_path)
    script = _DYING_HOST.format(tests=str(Path(__file__).parents[1]), home=str(home.root))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        # Wait until the dying host's decision is durable (it is mid-call from here on).
        with Host(home, config=QUIET) as other:
            for _ in range(2000):
                if other.ledger.pending_intents():
                    break
                time.sleep(0.01)
            assert not other.settled_at_start
            assert len(other.ledger.pending_intents()) == 1
            assert others_serving(home.lease_path)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # The kernel dropped the killed host's lock: the next host is alone and settles the call.
    with Host(home, config=QUIET) as after:
        assert after.settled_at_start
        assert after.ledger.pending_intents() == []
        assert after.ledger.quota_state(_quota_key(home), QUOTA_LIMIT, QUOTA_WINDOW_S).used == 0
        assert after.ledger.seats_in_use(after.server.seats_in_use) == 0
    last = audit_bodies(home)[-1]
    assert (last["kind"], last["ok"], last["reconciled"], last["refunded"]) == (
        "outcome", False, True, True)


def test_lease_refuses_a_second_acquire_and_releases_twice(tmp_path: Path) -> None:
    lease = HomeLease(tmp_path / "host.lock")
    assert lease.acquire(lambda: None) is True
    with pytest.raises(LeaseError, match="already holds"):
        lease.acquire(lambda: None)
    assert others_serving(lease.path)
    lease.release()
    lease.release()
    assert not others_serving(lease.path)
    assert os.stat(lease.path).st_mode & 0o777 == 0o600


def test_a_failed_settle_leaves_the_home_unlocked(tmp_path: Path) -> None:
    lease = HomeLease(tmp_path / "host.lock")

    def boom() -> None:
        raise RuntimeError("settling failed")

    with pytest.raises(RuntimeError, match="settling failed"):
        lease.acquire(boom)
    assert not lease.held and not others_serving(lease.path)
    assert HomeLease(lease.path).acquire(lambda: None) is True


def test_a_host_waits_for_a_settling_host_then_gives_up_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "host.lock"
    settling = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(settling, fcntl.LOCK_EX)  # another host mid-settle
    try:
        lease = HomeLease(path, wait_s=0.2)
        with pytest.raises(LeaseError, match="held exclusively by"):
            lease.acquire(lambda: pytest.fail("must not settle while another host does"))
        assert not lease.held
    finally:
        os.close(settling)
    assert not others_serving(path)


def test_doctor_says_whether_a_host_serves_and_what_is_unfinished(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    install_fuzz_app(home)
    with Host(home, config=QUIET) as host:
        host.ledger.admit(AuditRecord(  # a call's first half: decision durable, no outcome yet
            kind="decision", app_id="fuzzapp", install_id="x", action="users.create",
            op_id="op_pending", write=True, args_digest="0" * 64), [])
        checks = {c.name: c for c in state_checks(home)}
        assert checks["host serving"].detail == "a host is serving this home"
        assert "in flight on the serving host" in checks["unfinished calls"].detail
        host.lease.release()  # as if it had died: the doctor now says who settles it
        checks = {c.name: c for c in state_checks(home)}
        assert checks["host serving"].detail == "no host is serving this home"
        assert "next host to start settles them" in checks["unfinished calls"].detail
