"""Crash consistency: SIGKILL the process driving the gate between quota reservation + audit
append, the server write, and the outcome record; restart a real Host (which reconciles on
start) and check that server, quota and audit agree (issue 6). A home whose server keeps its own
server.db takes three commits (the intent settled at the next start); a home made now commits
the server's write in its admission's transaction (`one_tx`: nothing is ever left to settle)."""
from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gatehelp import APP_ID, install_fuzz_app

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.ledger.audit import open_readonly
from host.runtime import Host, HostConfig
from host.server.embedded import EmbeddedServer

WORKER = Path(__file__).with_name("crash_worker.py")
LIMIT = 500  # the quota under test: large enough that kills land mid-stream, not on refusals
POLICY = f'''
schema = 1
name = "gatehelp"
[[rule]]
id = "crash-create"
effect = "permit"
apps = ["{APP_ID}"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
roles = ["bot"]
[[quota]]
id = "crash-quota"
apps = ["{APP_ID}"]
action = "users.create"
limit = {LIMIT}
window = "1h"
scope = "install"
'''


def _run_worker(home: Home, mode: str, tag: str, kill_after: float | None) -> int:
    proc = subprocess.Popen([sys.executable, str(WORKER), str(home.root), mode, tag],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    if kill_after is not None:
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=30)


def _audit(home: Home) -> list[dict]:
    conn = sqlite3.connect(home.host_db)
    return [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit ORDER BY seq")]


def _check_agreement(home: Home) -> dict[str, int]:
    with Host(home, config=HostConfig(watch=False)) as host:  # start() reconciles
        assert host.ledger.pending_intents() == []
        install_id = host.installs.by_app(APP_ID).install_id  # type: ignore[union-attr]
        used = host.ledger.quota_state(f"install:{install_id}:users.create#crash-quota", LIMIT, 3600).used
    records = _audit(home)
    decisions = {r["op_id"]: r for r in records if r.get("kind") == "decision"
                 and r.get("allowed") and r.get("action") == "users.create"}
    outcomes = {r["op_id"]: r for r in records if r.get("kind") == "outcome"}
    assert set(outcomes) == set(decisions), "every admitted write has exactly one outcome"
    server = EmbeddedServer(home.server_db, SystemClock())
    applied = {op for op in decisions if server.was_applied(op)}
    ok = {op for op, r in outcomes.items() if r.get("ok")}
    assert applied == ok, "the audit's outcomes say exactly what the server applied"
    assert server.count_users_created_by(APP_ID) == len(applied)
    assert used == len(applied), "quota units held == writes applied (refunds for the rest)"
    assert open_readonly(home.host_db, SystemClock()).verify().ok
    return {"applied": len(applied), "reconciled": sum(1 for r in outcomes.values()
                                                       if r.get("reconciled"))}


def _own_server_db(h: Home) -> None:
    """The server's data in a server.db of its own (a home made before its tables moved into
    host.db): a write is then three commits, with an intent between them (what the tests
    below attack). A home made now commits it in one transaction (the `one_tx` tests)."""
    EmbeddedServer(h.root / "server.db", SystemClock()).close()


@pytest.fixture()
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home").ensure()
    _own_server_db(h)
    install_fuzz_app(h)
    (h.policies_dir / "gatehelp.toml").write_text(POLICY)
    return h


@pytest.fixture()
def one_tx(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home").ensure()
    install_fuzz_app(h)
    (h.policies_dir / "gatehelp.toml").write_text(POLICY)
    return h


def _intents(home: Home) -> int:
    with sqlite3.connect(home.host_db) as c:
        return int(c.execute("SELECT count(*) FROM audit_intents").fetchone()[0])


@pytest.mark.parametrize("where", ["before-write", "after-write"])
def test_one_tx_a_kill_inside_the_write_leaves_all_of_it_or_none(one_tx: Home,
                                                                  where: str) -> None:
    """The server's tables in host.db: killed just before or just after the server applied the
    third create, inside its admission's transaction, nothing of that create is left (no
    decision, no unit, no user), nothing waits for settlement, and no record says reconciled."""
    assert _run_worker(one_tx, f"{where}:3", "o", None) == -signal.SIGKILL
    assert _intents(one_tx) == 0
    tally = _check_agreement(one_tx)
    assert tally == {"applied": 2, "reconciled": 0}
    decisions = [r for r in _audit(one_tx) if r.get("kind") == "decision"
                 and r.get("action") == "users.create"]
    assert len(decisions) == 2


def test_one_tx_random_kills_never_leave_anything_to_settle(one_tx: Home) -> None:
    rng = random.Random(20261206)
    for round_ in range(5):
        _run_worker(one_tx, "random", f"r{round_}", rng.uniform(0.01, 0.12))
        assert _intents(one_tx) == 0
        assert _check_agreement(one_tx)["reconciled"] == 0


def test_kill_before_the_server_write_is_refunded_on_restart(home: Home) -> None:
    assert _run_worker(home, "before-write:3", "a", None) == -signal.SIGKILL
    tally = _check_agreement(home)
    assert tally == {"applied": 2, "reconciled": 1}
    recs = _audit(home)
    last = [r for r in recs if r.get("reconciled")][-1]
    assert last["ok"] is False and last["refunded"] is True


def test_kill_after_the_server_write_keeps_the_unit_on_restart(home: Home) -> None:
    assert _run_worker(home, "after-write:3", "b", None) == -signal.SIGKILL
    tally = _check_agreement(home)
    assert tally == {"applied": 3, "reconciled": 1}
    last = [r for r in _audit(home) if r.get("reconciled")][-1]
    assert last["ok"] is True and not last.get("refunded")


def test_random_kills_never_leave_server_quota_and_audit_disagreeing(home: Home) -> None:
    rng = random.Random(20261125)
    for round_ in range(5):
        _run_worker(home, "random", f"r{round_}", rng.uniform(0.01, 0.12))
        _check_agreement(home)


def test_a_kill_while_a_writes_success_waits_is_settled_from_the_servers_op_log(
        tmp_path: Path) -> None:
    """A running host records a server write's success by the group commit (its decision and
    unit are durable already): a crash before that commit leaves the intent, and the restart
    settles it from the server's op log as applied, unit kept, outcome `ok`, reconciled."""
    h = Home(tmp_path / "home").ensure()
    _own_server_db(h)
    install_fuzz_app(h)  # the gatehelp policy: users.create and roles.assign on its bots
    assert _run_worker(h, "held-write:3", "h", None) == -signal.SIGKILL
    with Host(h, config=HostConfig(watch=False)) as host:  # start() reconciles
        assert host.ledger.pending_intents() == []
    records = _audit(h)
    writes = [r for r in records if r.get("action") == "roles.assign"]
    decisions = [r for r in writes if r["kind"] == "decision" and r.get("allowed")]
    outcomes = {r["op_id"]: r for r in writes if r["kind"] == "outcome"}
    assert len(decisions) == 3 and set(outcomes) == {d["op_id"] for d in decisions}
    server = EmbeddedServer(h.server_db, SystemClock())
    assert all(server.was_applied(d["op_id"]) for d in decisions)
    # the first two were committed by the next call's admission; the third, held when the
    # process died, is settled from the op log: applied, its unit kept
    assert [bool(outcomes[d["op_id"]].get("reconciled")) for d in decisions] == [
        False, False, True]
    assert all(o["ok"] is True and o["refunded"] is False for o in outcomes.values())
    assert open_readonly(h.host_db, SystemClock()).verify().ok


def test_a_kill_while_a_creations_success_waits_counts_its_seat_once(tmp_path: Path) -> None:
    """A creation under a seat ceiling holds its success for the group commit too: the seat is
    counted once (as the user: a pending intent whose op the server applied is no seat of its
    own), while it waits and after a crash settles it from the op log."""
    from gatehelp import add_seat_ceiling, build_rig

    h = Home(tmp_path / "home").ensure()
    _own_server_db(h)
    install_fuzz_app(h)
    add_seat_ceiling(h, 5)
    (h.policies_dir / "gatehelp.toml").write_text(
        (h.policies_dir / "gatehelp.toml").read_text().replace("limit = 3\n", "limit = 50\n"))
    assert _run_worker(h, "held-create:3", "c", None) == -signal.SIGKILL
    with Host(h, config=HostConfig(watch=False)) as host:  # start() reconciles
        assert host.ledger.pending_intents() == []
        assert host.ledger.seats_in_use(host.server.seats_in_use) == 3
        rig = build_rig(h, SystemClock())
        made = 0
        for i in range(4):
            try:
                host.gate.handle(rig.session, "users.create",
                                 {"username": f"after-{i}", "name": "A", "type": "bot"})
                made += 1
            except GateError as exc:
                assert exc.code == "quota_exceeded" and "workspace:seats" in exc.message
        assert made == 2  # the ceiling of 5, the three before the crash counted once each
    records = _audit(h)
    creates = [r for r in records if r.get("action") == "users.create"]
    decisions = [r for r in creates if r["kind"] == "decision" and r.get("allowed")]
    outcomes = {r["op_id"]: r for r in creates if r["kind"] == "outcome"}
    assert set(outcomes) == {d["op_id"] for d in decisions}
    held = outcomes[decisions[2]["op_id"]]
    assert held.get("reconciled") and held["ok"] is True and held["refunded"] is False
    assert open_readonly(h.host_db, SystemClock()).verify().ok
