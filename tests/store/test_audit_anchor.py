"""The audit anchor: what moves it, what may not, and what a damaged or missing one means.

Each test here attacks the anchor the way someone with write access to the home's files (not
the anchor's key) could, and checks the chain's one witness outside `host.db` is not lost.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest
from audithelp import rewrite_anchored

from host.clock import ManualClock
from host.ledger.audit import AuditLog, AuditRecord, open_readonly
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge
from host.ledger.records import AuditError
from host.store import open_store

T0 = 1_700_000_000.0
CREATE = Charge("app:a:users.create", 100, 3600.0)


def _ledger(tmp_path: Path, every: int = 2) -> Ledger:
    return Ledger(tmp_path / "host.db", ManualClock(T0), anchor_path=tmp_path / "audit.anchor",
                  key_path=tmp_path / "keys" / "audit-anchor.key", anchor_every=every)


def _create(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a", install_id="i", action="users.create",
                       op_id=op, write=True)


def test_a_damaged_anchor_never_fails_an_append_after_its_commit(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An append whose transaction committed returns normally even when the anchor file is
    damaged (a bad sector, a stray edit): raising there refused a call whose decision, unit
    and intent were already durable. The damage is logged once and `verify` reports it."""
    led = _ledger(tmp_path)
    led.append(AuditRecord(kind="supervisor", event="x"))  # seq 1, anchored
    (tmp_path / "audit.anchor").write_text("garbage\n")
    with caplog.at_level(logging.WARNING, logger="stockade"):
        adm = led.admit(_create("op-1"), [CREATE])  # seq 2: anchoring is due here
        assert adm.allowed
        led.outcome(adm.seq, "op-1", True, None, False)  # seq 3
        for _ in range(4):  # more anchoring points, and the upkeep's
            led.append(AuditRecord(kind="supervisor", event="y"))
            led.checkpoint()
    assert [i.op_id for i in led.pending_intents()] == []
    assert led.quota_state(CREATE.key, 100, 3600.0).used == 1
    lines = [r for r in caplog.records if "anchor" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]  # once, not every interval
    res = led.audit.verify()
    assert not res.ok and "anchor damaged" in (res.problem or "")
    led.close()  # closing (which anchors) does not raise either


def test_a_chain_without_its_anchor_fails_verify_even_when_the_key_is_gone_too(
        tmp_path: Path) -> None:
    """Deleting both the anchor and its key must not turn "anchor missing" into "no anchor,
    not checked": read-only `verify` would then pass a truncated chain."""
    led = _ledger(tmp_path)
    for i in range(6):
        led.append(AuditRecord(kind="supervisor", event="x", detail=f"r{i}"))
    led.close()
    raw = sqlite3.connect(tmp_path / "host.db", isolation_level=None)
    raw.execute("DROP TRIGGER audit_no_delete")
    raw.execute("DELETE FROM audit WHERE seq > 3")  # cut the newest records
    raw.close()
    (tmp_path / "audit.anchor").unlink()
    (tmp_path / "keys" / "audit-anchor.key").unlink()
    log = AuditLog(open_store(tmp_path / "host.db", readonly=True), ManualClock(T0),
                   anchor_path=tmp_path / "audit.anchor",
                   key_path=tmp_path / "keys" / "audit-anchor.key", readonly=True)
    res = log.verify()
    assert not res.ok and "anchor missing" in (res.problem or ""), res


def test_a_fresh_home_makes_its_key_and_first_anchor_and_an_empty_chain_verifies(
        tmp_path: Path) -> None:
    """The legitimate start with nothing: an empty chain needs no anchor (read-only, keyless),
    and the first record written makes the key and anchors itself."""
    (tmp_path / "empty").mkdir()
    AuditLog(tmp_path / "empty" / "host.db", ManualClock(T0)).close()  # the schema only
    (tmp_path / "empty" / "keys" / "audit-anchor.key").unlink()
    assert open_readonly(tmp_path / "empty" / "host.db", ManualClock(T0)).verify().ok
    led = _ledger(tmp_path, every=64)
    led.append(AuditRecord(kind="supervisor", event="first"))
    assert (tmp_path / "keys" / "audit-anchor.key").exists()
    res = led.audit.verify()
    assert res.ok and res.anchor is not None and res.anchor.seq == 1


def _filled(tmp_path: Path, n: int = 6) -> None:
    led = _ledger(tmp_path, every=4)
    for i in range(n):
        led.append(AuditRecord(kind="supervisor", event="test", detail=f"r{i}"))
    led.close()


def test_closing_a_log_never_anchors_a_rewritten_chain(tmp_path: Path) -> None:
    """A process that opens the log and closes it (a refused `serve`, any CLI command) must
    not re-sign the anchor over a chain rewritten under it."""
    _filled(tmp_path)
    rewrite_anchored(tmp_path / "host.db")
    before = (tmp_path / "audit.anchor").read_text()
    led = _ledger(tmp_path)
    assert not led.audit.verify().ok
    led.append(AuditRecord(kind="supervisor", event="y"))  # anchoring due (every 2)
    led.checkpoint()
    led.close()
    assert (tmp_path / "audit.anchor").read_text() == before
    res = _ledger(tmp_path).audit.verify()
    assert not res.ok and "chain rewritten" in (res.problem or ""), res


def test_a_deleted_anchor_is_never_remade_over_a_chain_this_process_did_not_write(
        tmp_path: Path) -> None:
    _filled(tmp_path)
    rewrite_anchored(tmp_path / "host.db", extra=0)
    (tmp_path / "audit.anchor").unlink()
    led = _ledger(tmp_path)
    led.append(AuditRecord(kind="supervisor", event="y"))
    led.checkpoint()
    led.close()
    assert not (tmp_path / "audit.anchor").exists()
    assert "anchor missing" in (_ledger(tmp_path).audit.verify().problem or "")


def test_a_running_log_stops_anchoring_when_its_chain_is_rewritten_under_it(
        tmp_path: Path) -> None:
    """A host serving while someone rewrites host.db: its own appends chain onto the forged
    head, and its next anchoring must see that the head no longer descends from what it
    anchored."""
    led = _ledger(tmp_path, every=4)
    for i in range(6):
        led.append(AuditRecord(kind="supervisor", event="test", detail=f"r{i}"))
    assert led.audit.verify().ok
    before = (tmp_path / "audit.anchor").read_text()
    rewrite_anchored(tmp_path / "host.db", extra=0)
    for _ in range(4):
        led.append(AuditRecord(kind="supervisor", event="after"))
    led.checkpoint()
    led.close()
    assert (tmp_path / "audit.anchor").read_text() == before
    assert not _ledger(tmp_path).audit.verify().ok


def test_records_of_other_processes_are_verified_before_the_anchor_moves_over_them(
        tmp_path: Path) -> None:
    """Two processes on one home: each anchors over the other's records once they verify."""
    a, b = _ledger(tmp_path, every=4), _ledger(tmp_path, every=4)
    for i in range(10):
        (a if i % 3 else b).append(AuditRecord(kind="supervisor", event="test", detail=f"r{i}"))
    a.checkpoint()
    b.checkpoint()
    a.close()
    b.close()
    res = _ledger(tmp_path).audit.verify()
    assert res.ok and res.anchor is not None and res.anchor.seq == 10, res


def _count_walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the records each verifying walk reads, from now on (one entry a walk)."""
    from host.ledger import verify

    walked: list[int] = []
    real = verify.walk_from

    def counting(rows: object, start: tuple[int, str]) -> object:
        rows = list(rows)  # type: ignore[call-overload]
        walked.append(len(rows))
        return real(rows, start)

    monkeypatch.setattr(verify, "walk_from", counting)
    return walked


def test_a_processs_own_appends_move_the_anchor_without_reading_them_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot path gains no verify per append: what this process appended onto the head it
    verified is known without reading it back; only other processes' records are walked."""
    led = _ledger(tmp_path, every=4)
    led.append(AuditRecord(kind="supervisor", event="first"))
    walked = _count_walks(monkeypatch)
    for i in range(40):
        adm = led.admit(_create(f"op-{i}"), [CREATE])
        led.outcome(adm.seq, f"op-{i}", True, None, False)
        led.append(AuditRecord(kind="supervisor", event="x"))
    led.checkpoint()
    assert sum(walked) == 0, walked
    res = led.audit.verify()
    assert res.ok and res.anchor is not None and res.anchor.seq == res.last_seq == 121


def test_an_operator_record_needs_the_chain_to_verify_from_its_anchor_and_walks_only_that(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from host.ledger.operator import audited

    _filled(tmp_path, 6)  # anchored at 6 by close
    other = _ledger(tmp_path, every=100)  # another process: 3 records it leaves unanchored
    for _ in range(3):
        other.append(AuditRecord(kind="supervisor", event="other"))
    walked = _count_walks(monkeypatch)
    log = AuditLog(tmp_path / "host.db", ManualClock(T0),
                   anchor_path=tmp_path / "audit.anchor",
                   key_path=tmp_path / "keys" / "audit-anchor.key")
    with audited(log, "test"):
        pass
    assert walked == [3]  # the records after the anchor, not the chain from its start
    log.close()
    assert _ledger(tmp_path).audit.verify().ok

    rewrite_anchored(tmp_path / "host.db", extra=0)
    count = sqlite3.connect(tmp_path / "host.db").execute("SELECT count(*) FROM audit")
    before = count.fetchone()[0]
    ran = False
    with pytest.raises(AuditError) as refused:
        with audited(tmp_path / "host.db", "test"):
            ran = True
    assert not ran
    message = str(refused.value)
    assert "chain rewritten" in message and "audit verify" in message and "--degraded" in message
    count = sqlite3.connect(tmp_path / "host.db").execute("SELECT count(*) FROM audit")
    assert count.fetchone()[0] == before


class _CommitsBeforeAnswering:
    """A trusted head whose reader loses the race: another thread of the same process commits
    a record (moving the trusted head) after the reader read the table's head, before it asks
    what it trusts. Under load (a group commit on its own thread) that interleaving is common."""

    def __init__(self, led: Ledger) -> None:
        self.led, self.inner, self.armed = led, led.audit.trusted, True

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def get(self) -> tuple[int, str] | None:
        if self.armed:
            self.armed = False
            worker = threading.Thread(target=self.led.append,
                                      args=(AuditRecord(kind="supervisor", event="racing"),))
            worker.start()
            worker.join()
        return self.inner.get()


@pytest.mark.parametrize("act", ["anchor", "operator_check"])
def test_a_record_committed_by_another_thread_mid_check_is_no_tamper_alarm(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, act: str) -> None:
    """Reading the table's head before the trusted head let a commit in between make the
    trusted head newer than the head read: "records were cut or rewritten" on an intact
    chain, logged as tamper at an anchoring and refusing an operator's record (seen in a
    bench run with reads group-committed on their own thread)."""
    led = _ledger(tmp_path, every=1000)
    for _ in range(3):
        led.append(AuditRecord(kind="supervisor", event="x"))
    led.audit.trusted = _CommitsBeforeAnswering(led)  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="stockade"):
        if act == "anchor":
            led.audit.anchor_quietly()
        else:
            led.audit.verify_from_anchor()
    assert not [r.getMessage() for r in caplog.records if "anchor" in r.getMessage()]
    if act == "anchor":
        anchor = led.audit.read_anchor()
        assert anchor is not None and anchor.seq >= 3
    res = led.audit.verify()
    assert res.ok and res.last_seq == 4
    led.close()


def test_the_anchored_records_own_content_is_checked_before_records_chain_onto_it(
        tmp_path: Path) -> None:
    """The walk from the anchor compared the anchored record's stored hash with the anchor and
    went on from there: its body, edited in place (the hash column left as it was), passed, and
    an operator's record was chained onto it. Its content is hashed again now."""
    from host.ledger.operator import audited

    _filled(tmp_path, 6)  # anchored at 6 by close
    c = sqlite3.connect(tmp_path / "host.db", isolation_level=None)
    c.execute("DROP TRIGGER IF EXISTS audit_no_update")
    (anchored,) = c.execute("SELECT max(seq) FROM audit").fetchone()
    c.execute("UPDATE audit SET body = replace(body, '\"test\"', '\"tost\"') WHERE seq = ?",
              (anchored,))
    assert '"tost"' in c.execute("SELECT body FROM audit WHERE seq = ?", (anchored,)
                                 ).fetchone()[0]
    c.close()
    ran = False
    with pytest.raises(AuditError, match=f"record {anchored}: hash does not match"):
        with audited(tmp_path / "host.db", "test"):
            ran = True
    assert not ran
