"""The gate's install cache (issue 27): no install SELECT per call, yet every disable, grant,
generation or epoch change made by another process is seen by the very next call, on every
thread."""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from gatehelp import APP_ID, build_rig, install_fuzz_app

from host.apps.installs import InstallStore
from host.clock import ManualClock
from host.errors import GateError
from host.home import Home

READ = ("users.get_by_username", {"username": "nobody-here"})


def _rig(tmp_path: Path):  # type: ignore[no-untyped-def]
    home = Home(tmp_path / "home").ensure()
    install_fuzz_app(home)
    return build_rig(home, ManualClock(1_700_000_000.0))


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


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_by_another_process_is_seen_by_the_next_call(tmp_path: Path,
                                                             change: str) -> None:
    rig = _rig(tmp_path)
    # Both threads have called (and cached what they saw) before the change.
    assert _call(rig) == "ok" and _call(rig, thread=True) == "ok" and _call(rig) == "ok"
    with InstallStore(rig.home.host_db) as other:  # as the CLI would, its own connection
        CHANGES[change](other, rig.install.install_id)
    assert _call(rig) == "permission_denied"
    assert _call(rig, thread=True) == "permission_denied"


def test_steady_calls_read_no_install_row(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    assert _call(rig) == "ok"
    seen: list[str] = []
    conn = rig.ledger.store.conn()
    conn.set_trace_callback(seen.append)
    try:
        for _ in range(5):
            assert _call(rig) == "ok"
    finally:
        conn.set_trace_callback(None)
    assert not [s for s in seen if "FROM install" in s], seen
    with InstallStore(rig.home.host_db) as other:
        other.set_enabled(rig.install.install_id, False, "operator disabled")
    assert _call(rig) == "permission_denied"
    assert rig.session.app_id == APP_ID
