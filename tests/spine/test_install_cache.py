"""The gate's install cache (issue 27): no install SELECT per call, yet every disable, grant,
generation or epoch change made by another process is seen by the very next call, on every
thread."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gatehelp import APP_ID, build_rig, change_before, install_fuzz_app

from host.apps.installs import InstallStore
from host.clock import ManualClock
from host.errors import GateError
from host.home import Home
from host.server.embedded import EmbeddedServer

READ = ("users.get_by_username", {"username": "nobody-here"})


def _rig(tmp_path: Path, *, group_reads: bool = False,  # type: ignore[no-untyped-def]
         own_server_db: bool = False):
    """`group_reads`: reads' records wait for the group commit (a running host's ledger), so a
    read has no admission and asks the store itself; else each read is admitted.
    `own_server_db`: the server's data in a server.db of its own, so a create is admitted by
    `Ledger.admit` (three commits) instead of `Ledger.admit_apply` (one transaction)."""
    home = Home(tmp_path / "home").ensure()
    if own_server_db:
        EmbeddedServer(home.root / "server.db", ManualClock(0.0)).close()
    install_fuzz_app(home)
    return build_rig(home, ManualClock(1_700_000_000.0), group_reads=group_reads)


def _call(rig, thread: bool = False) -> str:  # type: ignore[no-untyped-def]
    """'ok' when the gate let the read through (the server answers not_found: no such user),
    else the refusal's code; on a second thread (its own ledger connection) if asked."""
    out: list[str] = []

    def run() -> None:
        try:
            rig.gate.handle(rig.session, READ[0], dict(READ[1]))
            out.append("ok")
        except GateError as exc:
            out.append("ok" if exc.code == "not_found" else exc.code)

    if thread:
        t = threading.Thread(target=run)
        t.start()
        t.join()
    else:
        run()
    return out[0]


CHANGES: dict[str, Callable[[InstallStore, str], object]] = {
    "disable": lambda s, iid: s.set_enabled(iid, False, "operator disabled"),
    "generation": lambda s, iid: s.bump_generation(iid),
    "epoch": lambda s, _iid: s.bump_epoch(),
}


@pytest.mark.parametrize("group_reads", [False, True], ids=["admitted", "held"])
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_by_another_process_is_seen_by_the_next_call(tmp_path: Path, change: str,
                                                             group_reads: bool) -> None:
    rig = _rig(tmp_path, group_reads=group_reads)
    # Both threads have called (and cached what they saw) before the change.
    assert _call(rig) == "ok" and _call(rig, thread=True) == "ok" and _call(rig) == "ok"
    with InstallStore(rig.home.host_db) as other:  # as the CLI would, its own connection
        CHANGES[change](other, rig.install.install_id)
    assert _call(rig) == "permission_denied"
    assert _call(rig, thread=True) == "permission_denied"


@pytest.mark.parametrize("group_reads", [False, True], ids=["admitted", "held"])
def test_a_stale_cached_record_never_refuses_a_call(tmp_path: Path, group_reads: bool) -> None:
    """A call is decided on the cached record first, but a refusal is decided again on the
    current one before it is recorded: the app, disabled and then enabled again by another
    process, restarts with a token of the new generation, and its calls go through although
    the cache still holds the disabled record."""
    rig = _rig(tmp_path, group_reads=group_reads)
    with InstallStore(rig.home.host_db) as other:
        other.set_enabled(rig.install.install_id, False, "operator disabled")
    assert _call(rig) == "permission_denied"  # the cache now holds the disabled record
    with InstallStore(rig.home.host_db) as other:
        other.set_enabled(rig.install.install_id, True, "operator enabled")
    # The restarted app's session (its token names the current generation), on the same gate.
    rig.session = build_rig(rig.home, ManualClock(1_700_000_000.0)).session
    assert _call(rig) == "ok"
    assert _call(rig, thread=True) == "ok"


CREATE = ("users.create", {"username": "late", "name": "late", "type": "bot", "roles": ["bot"]})
# A create's admission: in one transaction with the server's write (the server's tables in
# host.db), or on its own before it (a home whose server keeps its own server.db).
ADMISSIONS = {"one-tx": "admit_apply", "three-commits": "admit"}


@pytest.mark.parametrize("admission", sorted(ADMISSIONS))
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_committed_after_the_decision_refuses_the_call_at_admission(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, admission: str) -> None:
    """The decision is made on the cached record; the operator's disable (or a generation or
    epoch change) commits from another process before the call's admission. The admission
    must see it: the call is refused, nothing reaches the server, no allow is recorded."""
    rig = _rig(tmp_path, own_server_db=admission == "three-commits")
    assert _call(rig) == "ok"  # the install record is cached
    iid = rig.install.install_id
    changed = change_before(monkeypatch, rig.ledger, ADMISSIONS[admission], rig.home,
                            lambda other: CHANGES[change](other, iid))
    with pytest.raises(GateError) as refused:
        rig.gate.handle(rig.session, CREATE[0], dict(CREATE[1]))
    assert changed and refused.value.code == "permission_denied"
    assert "users_create" not in rig.server.reached
    creates = [e.body for e in rig.ledger.audit.tail(10) if e.body.get("action") == CREATE[0]]
    assert [(b["kind"], b["allowed"]) for b in creates] == [("decision", False)], creates
    assert rig.ledger.pending_intents() == []


@pytest.mark.parametrize("admission", sorted(ADMISSIONS))
def test_an_install_that_changes_before_every_admission_is_refused_after_a_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, admission: str) -> None:
    """A script changing the install in a loop cannot pin the app's thread: each change makes
    the call be decided again, at most `MAX_DECISIONS` times, then it is refused (recorded)
    with nothing done."""
    from host.gate.gate import MAX_DECISIONS

    rig = _rig(tmp_path, own_server_db=admission == "three-commits")
    assert _call(rig) == "ok"
    rec = rig.install
    admissions = change_before(  # a change that revokes nothing, before every admission
        monkeypatch, rig.ledger, ADMISSIONS[admission], rig.home,
        lambda other: other.set_app_user_id(rec.install_id, rec.app_user_id), every=True)
    with pytest.raises(GateError) as refused:
        rig.gate.handle(rig.session, CREATE[0], dict(CREATE[1]))
    assert refused.value.code == "internal" and "changed" in refused.value.message
    assert len(admissions) == MAX_DECISIONS
    assert "users_create" not in rig.server.reached
    last = rig.ledger.audit.tail(1)[0].body
    assert (last["action"], last["allowed"]) == (CREATE[0], False)
    monkeypatch.undo()
    assert _call(rig) == "ok"  # once it stops changing, calls go through


@contextlib.contextmanager
def _statements(rig) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """Every statement this thread's ledger connection runs inside the block."""
    seen: list[str] = []
    conn = rig.ledger.store.conn()
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


def test_steady_calls_read_no_install_row(tmp_path: Path) -> None:
    """An admitted call reads the change counter inside its admission's transaction, and
    nothing of the installs besides: no probe before it, no install row."""
    rig = _rig(tmp_path)
    assert _call(rig) == "ok"
    with _statements(rig) as seen:
        for _ in range(5):
            assert _call(rig) == "ok"
    assert not [s for s in seen if "FROM install_installs" in s or "data_version" in s], seen
    counters = [i for i, s in enumerate(seen) if "FROM install_meta" in s]
    assert len(counters) == 5
    # the transaction's first statement (the write turn restores its connection's
    # busy_timeout right after the BEGIN, `host.store.writeturn`)
    assert all(_before(seen, i) == "BEGIN IMMEDIATE" for i in counters), seen
    with InstallStore(rig.home.host_db) as other:
        other.set_enabled(rig.install.install_id, False, "operator disabled")
    assert _call(rig) == "permission_denied"
    assert rig.session.app_id == APP_ID


def _before(seen: list[str], i: int) -> str:
    """The statement before `seen[i]`, the write turn's `PRAGMA busy_timeout` skipped."""
    while i > 0 and seen[i - 1].startswith("PRAGMA busy_timeout"):
        i -= 1
    return seen[i - 1] if i > 0 else ""


def _foreign_commit(home: Home) -> None:
    """A commit to host.db by another connection that changes no install (as the ledger's
    commits on other threads are): it moves the probe's PRAGMA data_version, not the counter."""
    with InstallStore(home.host_db) as other:
        with other.store.transaction() as c:
            c.execute("CREATE TABLE IF NOT EXISTS probe_noise (n INTEGER)")
            c.execute("INSERT INTO probe_noise VALUES (1)")


def test_under_steady_foreign_commits_the_probe_is_skipped_and_no_change_missed(
        tmp_path: Path) -> None:
    """Under load the PRAGMA says "changed" before every call, so a thread stops asking it and
    reads the counter directly (one statement, not two); a disable made while it skips is
    still seen by the very next call, and once the commits stop the PRAGMA comes back."""
    from host.gate import installview

    rig = _rig(tmp_path, group_reads=True)
    assert _call(rig) == "ok"
    with _statements(rig) as seen:
        calls = installview.PROBE_STREAK + 20
        for _ in range(calls):
            _foreign_commit(rig.home)
            assert _call(rig) == "ok"
        pragmas = [s for s in seen if "data_version" in s.lower() and "PRAGMA" in s]
        counters = [s for s in seen if "FROM install_meta" in s]
        assert len(counters) == calls  # every call read the counter: each one was needed
        assert len(pragmas) == installview.PROBE_STREAK  # then no more PRAGMA before it

        # The commits stop: after the retry the PRAGMA is asked again and finds nothing moved.
        for _ in range(installview.PROBE_RETRY):
            assert _call(rig) == "ok"
        del seen[:]
        for _ in range(5):
            assert _call(rig) == "ok"
        assert not [s for s in seen if "FROM install_meta" in s], seen

        # Load again, and a disable by another process while the thread skips the PRAGMA.
        for _ in range(installview.PROBE_STREAK + 3):
            _foreign_commit(rig.home)
            assert _call(rig) == "ok"
        with InstallStore(rig.home.host_db) as other:
            other.set_enabled(rig.install.install_id, False, "operator disabled")
        assert _call(rig) == "permission_denied"
