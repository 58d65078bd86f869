"""Two writers of one anchor file never move it backwards.

`write_anchor` reads the anchor, checks "never move backwards", walks the chain and renames its
file over the anchor. Two anchorings of one home race (a host's upkeep thread and an operator
command's close, or two threads): without turns and a re-check under them, a writer preempted
before its rename put back an OLDER head over the newer one another had just written, and the
records the newer anchor pinned could then be cut from host.db with `audit verify` passing.
The interleaving is forced here (one writer held just before its rename), not left to timing.
"""
from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import host.ledger.audit as audit_mod
from host.clock import ManualClock
from host.ledger.audit import AuditLog, AuditRecord, open_readonly

T0 = 1_700_000_000.0
REC = AuditRecord(kind="lifecycle", app_id="a1", event="x")
LOCK_NAME = ".audit.anchor.lock"  # beside HOME/audit.anchor


def _log(home: Path) -> AuditLog:
    # anchor_every far away: only the anchorings each test makes move the anchor
    return AuditLog(home / "host.db", ManualClock(T0), anchor_every=1000)


def _signal_when_refused(monkeypatch: pytest.MonkeyPatch, refused: threading.Event) -> None:
    """Set `refused` when any flock attempt finds the lock held by someone else."""
    real = fcntl.flock

    def flock(fd: Any, op: int) -> None:
        try:
            real(fd, op)
        except BlockingIOError:
            refused.set()
            raise

    monkeypatch.setattr(fcntl, "flock", flock)


def _hold_before_rename(monkeypatch: pytest.MonkeyPatch, who: Callable[[], bool],
                        paused: threading.Event, go: threading.Event) -> None:
    """The first anchor write made where `who()` holds stops just before its rename."""
    real = audit_mod.write_anchor_file
    held = [False]

    def write(path: Path, key: bytes, seq: int, h: str) -> Any:
        if who() and not held[0]:
            held[0] = True
            paused.set()
            assert go.wait(20), "the test never let the held writer go"
        return real(path, key, seq, h)

    monkeypatch.setattr(audit_mod, "write_anchor_file", write)


def test_a_slower_writer_never_puts_an_older_head_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = _log(tmp_path)  # an operator command's log
    for _ in range(10):
        cli.append(REC)
    serving = _log(tmp_path)  # the serving host's
    assert serving.verify().ok

    paused, go, refused = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run(fn: Callable[[], object]) -> Callable[[], None]:
        def body() -> None:
            try:
                fn()
            except BaseException as e:
                errors.append(e)
            finally:
                refused.set()  # done counts as "got as far as it can" too
        return body

    slow = threading.Thread(target=run(cli.write_anchor))
    _hold_before_rename(monkeypatch, lambda: threading.current_thread() is slow, paused, go)
    slow.start()
    assert paused.wait(20)  # the command has checked and walked to seq 10; not renamed yet
    for _ in range(10):
        serving.append(REC)
    _signal_when_refused(monkeypatch, refused)
    fast = threading.Thread(target=run(serving.write_anchor))
    fast.start()
    assert refused.wait(20)  # the host's anchoring is waiting its turn (or, unguarded, done)
    go.set()
    slow.join(20)
    fast.join(20)
    assert not errors, errors
    anchor = serving.read_anchor()
    assert anchor is not None and anchor.seq == 20, anchor  # never moved back to 10

    # What the regression allowed: cutting records the anchor had pinned, unnoticed.
    c = sqlite3.connect(tmp_path / "host.db")
    c.execute("DROP TRIGGER audit_no_delete")
    c.execute("DELETE FROM audit WHERE seq > 10")
    c.commit()
    c.close()
    res = open_readonly(tmp_path / "host.db", ManualClock(T0)).verify()
    assert not res.ok and "missing" in (res.problem or ""), res


_HOLDER = """
import sys
from pathlib import Path
from host.ledger.audit import anchor_lock
with anchor_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_another_process_holding_the_anchor_is_waited_for_a_bounded_time(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The turns are taken across processes (an operator command beside a serving host), and
    a holder that stopped (a command suspended mid-anchoring) costs an anchoring a bounded
    wait, logged once: the anchor lags, it is never moved without the turn."""
    log = _log(tmp_path)
    for _ in range(5):
        log.append(REC)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "audit.anchor")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        log.anchor_wait_s = 0.2
        with pytest.raises(audit_mod.AnchorBusy):
            log.write_anchor()
        with caplog.at_level(logging.WARNING, logger="stockade"):
            for _ in range(3):
                log.anchor_quietly()  # the upkeep's rounds
        assert len([r for r in caplog.records if "anchor" in r.getMessage()]) == 1
        anchor = log.read_anchor()
        assert anchor is not None and anchor.seq == 1  # not moved without the turn
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(20)
    log.anchor_quietly()
    anchor = log.read_anchor()
    assert anchor is not None and anchor.seq == 5
    log.close()


def test_the_anchor_lock_file_is_the_owners_alone(tmp_path: Path) -> None:
    """Whoever can open the lock file can hold it and stop the anchor from moving: it is
    made 0600 whatever the umask, a looser one is tightened, and a symlink planted in its
    place is not followed."""
    log = _log(tmp_path)
    log.append(REC)
    lock = tmp_path / LOCK_NAME
    old = os.umask(0)
    try:
        lock.unlink(missing_ok=True)
        log.append(REC)
        log.write_anchor()
    finally:
        os.umask(old)
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    os.chmod(lock, 0o666)
    log.append(REC)
    log.write_anchor()
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600

    lock.unlink()
    target = tmp_path / "elsewhere"
    lock.symlink_to(target)
    log.append(REC)
    with pytest.raises(OSError):
        log.write_anchor()
    assert not target.exists()
    anchor = log.read_anchor()
    assert anchor is not None and anchor.seq == 3


def test_reading_and_an_empty_chain_make_no_lock_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    _log(empty).close()  # anchors nothing: no record
    assert not (empty / LOCK_NAME).exists()
    log = _log(tmp_path)
    log.append(REC)  # record 1 anchors itself
    log.close()
    (tmp_path / LOCK_NAME).unlink(missing_ok=True)
    ro = open_readonly(tmp_path / "host.db", ManualClock(T0))
    assert ro.verify().ok and ro.write_anchor() is None
    ro.close()
    assert not (tmp_path / LOCK_NAME).exists()
