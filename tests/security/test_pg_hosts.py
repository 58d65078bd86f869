"""Three real hosts (separate processes) on one PostgreSQL store: quotas exact when they race,
a SIGKILLed host's call settled by a survivor, an operator's change on one seen by all, one
audit chain that verifies from every host.

Each host has a home folder of its own, as on its own machine: the operator copied the first
home's keys, trust, policies and packages to the others (docs/SCALE.md, "Deploying"); the
host's state and the embedded workspace's data live in PostgreSQL, and each host keeps its own
audit anchor.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gatehelp import QUOTA_LIMIT, QUOTA_WINDOW_S, add_seat_ceiling, install_fuzz_app
from pghelp import stockade

from host.clock import SystemClock
from host.home import Home
from host.ledger.ledger import Ledger
from host.ledger.storelease import live_hosts
from host.migrate import migrate

WORKER = Path(__file__).with_name("pg_host_worker.py")


def _copy_home(first: Home, root: Path) -> Home:
    """Another machine's home: the files the operator keeps the same on every host."""
    for part in ("keys", "trust", "policies", "packages"):
        shutil.copytree(first.root / part, root / part)
    os.chmod(root, 0o700)
    return Home(root, first.store_url)


class Worker:
    def __init__(self, home: Home) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(home.root), str(home.store_url)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.answer().split()
        assert ready[0] == "READY", ready
        self.host_id = ready[1]

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send("stop")
            self.answer()
        self.proc.wait(30)


@pytest.fixture
def home(tmp_path: Path, pg_url: str) -> Iterator[Home]:
    migrate(pg_url)
    h = Home(tmp_path / "home", pg_url).ensure()
    install_fuzz_app(h)
    add_seat_ceiling(h)
    yield h


def _ledger(home: Home) -> Ledger:
    return Ledger(home.host_store, SystemClock())


def _quota_used(home: Home) -> int:
    led = _ledger(home)
    rows = led.store.conn().execute("SELECT key FROM quota_keys").fetchall()
    keys = [str(r[0]) for r in rows if ":users.create#" in str(r[0])]
    return sum(led.quota_state(k, QUOTA_LIMIT, QUOTA_WINDOW_S).used for k in keys)




def test_three_hosts_on_one_postgresql_store(home: Home, tmp_path: Path) -> None:
    homes = [home, *(_copy_home(home, tmp_path / f"machine{i}") for i in (1, 2, 3))]
    hosts = [Worker(h) for h in homes[:3]]
    started = [w.host_id for w in hosts]
    try:
        assert {h.host_id for h in live_hosts(str(home.store_url))} == \
            {w.host_id for w in hosts}

        # A host dies mid-create: its unit is reserved, its decision durable, no outcome.
        victim = hosts.pop(0)
        victim.send("hang")
        assert victim.answer() == "hanging"
        led = _ledger(home)
        deadline = time.monotonic() + 20
        while not led.pending_intents() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [i.host_id for i in led.pending_intents()] == [victim.host_id]
        assert _quota_used(home) == 1
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        # A survivor's upkeep finds the dead host's lease gone and settles its call.
        deadline = time.monotonic() + 30
        while led.pending_intents() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert led.pending_intents() == []
        assert _quota_used(home) == 0  # not applied: the unit came back, once
        settled = [e.body for e in led.audit.tail(50) if e.body.get("reconciled")]
        assert [(b["ok"], b["refunded"]) for b in settled] == [(False, True)]
        hosts.append(Worker(homes[3]))

        # The three live hosts race for the window's units: exactly QUOTA_LIMIT creates pass.
        attempts = 4
        for i in range(attempts):
            for n, w in enumerate(hosts):
                w.send(f"create race-{n}-{i}")
        answers = [w.answer() for _ in range(attempts) for w in hosts]
        assert answers.count("ok") == QUOTA_LIMIT, answers
        assert all(a == "ok" or a == "refused quota_exceeded" for a in answers), answers
        assert _quota_used(home) == QUOTA_LIMIT

        # An operator's change on any host reaches every host at its next call.
        for w in hosts:
            w.send("read")
        before = [w.answer() for w in hosts]
        assert all("revoked" not in a and "disabled" not in a for a in before), before
        done = stockade(home, "app", "disable", "fuzzapp")
        assert done.returncode == 0, done.stderr
        for w in hosts:
            w.send("read")
        after = [w.answer() for w in hosts]
        assert len(set(after)) == 1 and after[0].startswith("refused"), after
        assert after != before
    finally:
        for w in hosts:
            w.close()
    assert live_hosts(str(home.store_url)) == []

    # Each host recorded the policy revision it enforces, naming itself, in the one chain.
    loads = [str(e.body.get("detail")) for e in _ledger(home).audit.tail(500)
             if e.body["kind"] == "operator.policy_load"]
    for host_id in [*started, hosts[-1].host_id]:
        assert any(d.endswith(f"on host {host_id}") for d in loads), (host_id, loads)

    # One chain, verified by the CLI on every machine, each against its own host's anchor.
    for h in homes:
        verify = stockade(h, "audit", "verify", "--json")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert json.loads(verify.stdout)["ok"] is True
