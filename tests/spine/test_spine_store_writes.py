"""An app's persistence writes commit in one transaction with their decision, quota unit and
outcome (`Ledger.admit_apply`, DESIGN rule 9's second branch: the data lives in the ledger's own
store). Through a real host and a confined child: the records are the ones the three-commit
path writes, no intent is left behind, a refused write is recorded and refunded as before, and
a failure after the write leaves neither the write nor its decision (the three-commit path left
the write applied with its decision and no outcome)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app
from gatehelp import change_before

from host.home import Home
from host.ledger import ledger as ledger_module
from host.runtime import Host
from host.supervise.child import AppFailed

SRC = '''
from stockade import App, InvalidArgument, NotFound

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        out = []
        for key in event.get("gets", []):
            try:
                out.append(ctx.store.get(key))
            except NotFound:
                out.append("missing")
        for key, size in event["puts"]:
            try:
                ctx.store.put(key, "x" * size)
                out.append("ok")
            except InvalidArgument:
                out.append("invalid")
        for key in event.get("deletes", []):
            ctx.store.delete(key)
            out.append("deleted")
        return out
'''


def _host(tmp_path: Path) -> Host:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "keeper", ["livechat.read", "persistence"],
                            ["livechat.room_started"], SRC))
    return Host(home)


def _run(h: Host, event: dict[str, Any]) -> Any:
    runner = next(iter(h.runners.values()))
    return runner.submit("livechat.room_started", event, 10.0).result(30)


def _records(h: Host) -> list[dict[str, Any]]:
    if h.ledger.batch is not None:
        h.ledger.batch.flush()  # reads held for the group commit (none expected here)
    rows = h.ledger.store.conn().execute("SELECT seq, body FROM audit ORDER BY seq").fetchall()
    return [{"seq": int(r[0]), **json.loads(r[1])} for r in rows
            if '"persistence.' in r[1]]


def _units(h: Host) -> int:
    return int(h.ledger.store.conn().execute(
        "SELECT count(*) FROM quota_slots WHERE key LIKE '%persistence.put#%'").fetchone()[0])


def test_a_put_commits_its_decision_and_outcome_with_it(tmp_path: Path) -> None:
    with _host(tmp_path) as h:
        assert _run(h, {"puts": [["a", 3], ["b", 4]], "deletes": ["a"]}) == ["ok", "ok", "deleted"]
        recs = _records(h)
        assert [(r["kind"], r["action"]) for r in recs] == [
            ("decision", "persistence.put"), ("outcome", "persistence.put"),
            ("decision", "persistence.put"), ("outcome", "persistence.put"),
            ("decision", "persistence.delete"), ("outcome", "persistence.delete")]
        for decision, outcome in zip(recs[::2], recs[1::2], strict=True):
            assert decision["allowed"] is True and decision["write"] is True
            assert outcome == {"seq": decision["seq"] + 1, "kind": "outcome",
                               "ref_seq": decision["seq"], "op_id": decision["op_id"],
                               "ok": True, "code": "ok", "refunded": False,
                               "app_id": "keeper", "install_id": decision["install_id"],
                               "action": decision["action"]}
        assert h.ledger.pending_intents() == []
        assert _units(h) == 2
        iid = recs[0]["install_id"]
        assert h.persistence.get(iid, "b") == "xxxx" and h.persistence.get(iid, "a") is None
        assert h.ledger.audit.verify().ok


def test_a_refused_put_is_recorded_and_refunded_as_before(tmp_path: Path) -> None:
    with _host(tmp_path) as h:
        # a key over MAX_KEY_LEN: refused by the store, inside the write's transaction
        assert _run(h, {"puts": [["k" * 300, 1], ["fine", 1]]}) == ["invalid", "ok"]
        recs = _records(h)
        refused = [r for r in recs if r["kind"] == "outcome" and not r["ok"]]
        assert len(refused) == 1 and refused[0]["code"] == "invalid_argument"
        assert refused[0]["refunded"] is True
        assert [r["kind"] for r in recs] == ["decision", "outcome", "decision", "outcome"]
        assert _units(h) == 1  # the refused put's unit came back
        assert h.ledger.pending_intents() == []


def test_a_failure_after_the_write_leaves_neither_the_write_nor_its_decision(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ledger_module.append_in

    def outcome_fails(conn: Any, body: str, ts: float) -> int:
        if '"kind":"outcome"' in body and '"persistence.put"' in body:
            raise sqlite3.OperationalError("disk I/O error")
        return real(conn, body, ts)

    with _host(tmp_path) as h:
        monkeypatch.setattr(ledger_module, "append_in", outcome_fails)
        with pytest.raises(AppFailed, match=r"^internal: .*persistence.put: refused, the host could not complete it"):
            _run(h, {"puts": [["lost", 5]]})
        monkeypatch.undo()
        iid = next(iter(h.runners.values())).install_id
        assert h.persistence.get(iid, "lost") is None
        assert _records(h) == []
        assert _units(h) == 0
        assert h.ledger.pending_intents() == []


def _gets(h: Host) -> list[dict[str, Any]]:
    rows = h.ledger.store.conn().execute("SELECT seq, body FROM audit ORDER BY seq").fetchall()
    return [{"seq": int(r[0]), **json.loads(r[1])} for r in rows if '"persistence.get"' in r[1]]


def _get_units(h: Host, decision: dict[str, Any]) -> int:
    used = 0
    for q in decision["quota"]:  # the baseline's rate: every bridge call, this install
        used += h.ledger.quota_state(q["key"], q["limit"], q["window_s"]).used
    return used


def test_a_rated_get_and_its_refusal_commit_with_their_decision(tmp_path: Path) -> None:
    """Under the shipped baseline's rate a `get` is decided, read and settled in one
    transaction on the store its data lives in: a found key keeps its unit, a missing one is
    refused (the app sees NotFound) and refunded, and neither leaves an intent behind."""
    with _host(tmp_path) as h:
        assert _run(h, {"puts": [["a", 3]]}) == ["ok"]
        separate: list[str] = []  # outcomes recorded by a commit of their own, or held
        for name in ("outcome", "hold_outcome"):
            real = getattr(h.ledger, name)

            def spy(*a: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
                separate.append(_name)
                return _real(*a, **kw)
            setattr(h.ledger, name, spy)
        assert _run(h, {"gets": ["a", "nope"], "puts": []}) == ["xxx", "missing"]
        assert separate == []  # both settled inside their own admission's transaction
        recs = _gets(h)
        assert [(r["kind"], r.get("code")) for r in recs] == [
            ("decision", "allow"), ("outcome", "ok"), ("decision", "allow"),
            ("outcome", "not_found")]
        for decision, outcome in zip(recs[::2], recs[1::2], strict=True):
            assert decision["op_id"] == outcome["op_id"] and decision["quota"]
            assert outcome["seq"] == decision["seq"] + 1  # one transaction, nothing between
            assert outcome["ref_seq"] == decision["seq"]
        assert [r["refunded"] for r in recs[1::2]] == [False, True]
        assert h.ledger.pending_intents() == []
        before = _get_units(h, recs[2])
        assert _run(h, {"gets": ["nope"], "puts": []}) == ["missing"]
        assert _get_units(h, recs[2]) == before  # the refused get gave its unit back
        assert h.ledger.audit.verify().ok


def test_a_disable_committed_after_a_puts_decision_refuses_it_in_its_transaction(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The put is decided on the cached install record; the operator's disable commits from
    another process before the put's one transaction. That transaction must see it: nothing
    is written, no allow is recorded, the app is refused."""
    with _host(tmp_path) as h:
        assert _run(h, {"puts": [["first", 1]]}) == ["ok"]  # the install record is cached
        iid = next(iter(h.runners.values())).install_id
        disabled = change_before(monkeypatch, h.ledger, "admit_apply", h.home,
                                 lambda other: other.set_enabled(iid, False, "disabled"))
        with pytest.raises(AppFailed, match="permission_denied"):
            _run(h, {"puts": [["late", 1]]})
        assert disabled and h.persistence.get(iid, "late") is None
        puts = [r for r in _records(h) if r["kind"] == "decision"]
        assert [r["allowed"] for r in puts] == [True, False], puts
        assert h.ledger.pending_intents() == []
