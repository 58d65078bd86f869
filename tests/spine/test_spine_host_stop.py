"""`Host.stop` waits for the host's own threads before it closes what they use, and a start that
fails part-way stops what it opened.

The upkeep thread (checkpoints, lease sweep, policy poll, status) and the install watcher each
run a round every interval. A stop that returned while one was mid-round left it running against
closed stores: a policy poll after the ledger closed (seen as "policy change refused … audit
log is closed" when the home's folder went away after a stop), store connections opened again
after they were closed, and from the watcher an app started on a host that had stopped."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from host import rounds, runtime
from host.home import Home
from host.ledger.operator import append_operator
from host.ledger.records import AuditError
from host.runtime import Host, HostConfig


@pytest.mark.parametrize("thread", ["upkeep", "watch"])
def test_stop_returns_only_after_a_round_under_way_has_ended(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread: str) -> None:
    monkeypatch.setattr(rounds, "CHECKPOINT_INTERVAL_S", 0.02)
    monkeypatch.setattr(rounds, "WATCH_INTERVAL_S", 0.02)
    home = Home(tmp_path / "home").ensure()
    host = Host(home, config=HostConfig(watch=True, use_zygote=False)).start()
    entered = threading.Event()
    ended: list[float] = []

    def slow_round(*_args: object, **_kwargs: object) -> None:
        entered.set()
        time.sleep(0.5)
        ended.append(time.monotonic())

    if thread == "upkeep":
        monkeypatch.setattr(host.policy_watch, "poll", slow_round)
    else:
        monkeypatch.setattr(host.installs, "data_version", slow_round)
    try:
        assert entered.wait(10), f"the {thread} thread never ran a round"
    finally:
        host.stop()
    stopped = time.monotonic()
    assert ended and ended[-1] <= stopped, f"stop returned while the {thread} round ran on"
    time.sleep(0.1)
    assert len(ended) == 1, f"the {thread} thread ran another round after stop"


def test_a_round_stopped_mid_way_skips_its_remaining_steps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The upkeep's policy poll and status come after its checkpoints: a stop that arrives
    during a checkpoint ends the round there (the stop waits for it, not for the rest)."""
    monkeypatch.setattr(rounds, "CHECKPOINT_INTERVAL_S", 0.02)
    home = Home(tmp_path / "home").ensure()
    host = Host(home, config=HostConfig(watch=False, use_zygote=False)).start()
    entered = threading.Event()
    polls: list[float] = []
    real_checkpoint = host.ledger.checkpoint

    def slow_checkpoint() -> None:
        entered.set()
        time.sleep(0.3)
        real_checkpoint()

    monkeypatch.setattr(host.ledger, "checkpoint", slow_checkpoint)
    monkeypatch.setattr(host.policy_watch, "poll", lambda: polls.append(time.monotonic()))
    try:
        assert entered.wait(10)
        polls.clear()  # rounds before the slow one polled as usual
        stopping = time.monotonic()
    finally:
        host.stop()
    assert [t for t in polls if t >= stopping] == []


def test_a_start_that_fails_at_its_policy_record_stops_what_it_opened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy-load record is written before the host serves (rule 14); when it cannot be
    (a full disk), the start raises and the half-started host is stopped, not left with its
    ledger open: the next record finds the log closed."""
    home = Home(tmp_path / "home").ensure()
    host = Host(home, config=HostConfig(watch=False, use_zygote=False))

    def no_room(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runtime, "audit_policy_load", no_room)
    with pytest.raises(OSError, match="No space"):
        host.start()
    with pytest.raises(AuditError, match="closed"):
        append_operator(host.ledger.audit, "policy_load", detail="after a failed start")


def test_a_store_error_in_a_policy_load_ends_neither_the_upkeep_nor_the_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a PostgreSQL store a lock timeout while recording a policy load raised the driver's
    own error, which nothing in the round caught: the upkeep thread died, its lease stopped
    beating, and the host refused every call for good. And a load whose record failed was
    never tried again until the folder changed. Now the round survives any error of a step and
    the next poll records and adopts the change."""
    from host.ledger import audit
    from host.store import Conn
    from host.store.base import PgError

    monkeypatch.setattr(rounds, "CHECKPOINT_INTERVAL_S", 0.05)
    home = Home(tmp_path / "home").ensure()
    host = Host(home, config=HostConfig(watch=False, use_zygote=False)).start()
    try:
        (upkeep,) = [t for t in threading.enumerate() if t.name == "stockade-upkeep"]
        real_append = audit.append_in
        failed: list[str] = []

        def append_once(c: Conn, body: str, ts: float) -> int:
            if "policy_load" in body and not failed:
                failed.append("policy_load")  # the store's own error, as psycopg raises it
                raise PgError("canceling statement due to lock timeout")
            return real_append(c, body, ts)

        monkeypatch.setattr(audit, "append_in", append_once)
        before = host.policy_watch.source.current().revision
        (home.policies_dir / "later.toml").write_text(
            'schema = 1\nname = "later"\n[[rule]]\nid = "later"\neffect = "permit"\n'
            'apps = ["nobody"]\nactions = ["livechat.read"]\n')
        deadline = time.monotonic() + 10
        while host.policy_watch.source.current().revision == before:
            assert upkeep.is_alive(), "the upkeep thread died on the store error"
            assert time.monotonic() < deadline, "the change was never adopted"
            time.sleep(0.05)
        assert failed == ["policy_load"] and upkeep.is_alive()
    finally:
        host.stop()
