"""A policy reload that lands between a call's decision and its admission is seen at the admission.

The gate decides on the active policy, then admits the call in a transaction that may wait for
the store's write lock (another writer, another process) for seconds. A reload swapped in
meanwhile (a quota lowered, a forbid added: `host.gate.policywatch`, its `policy_load` record
written first) used to change nothing for that call: it was admitted on the old revision's
word, after the new revision's record, past the new limit or past the new forbid. The
admission now checks, in its own transaction, that the policy it was decided on is still the
active one, as it checks the install record (`Gate.handle`), and the call is decided again.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy
from gatehelp import EMPTY_APP, GateRig, build_rig, policy_rig

from host.clock import SystemClock
from host.errors import GateError
from host.gate.policywatch import PolicyWatch
from host.home import Home
from host.ledger.operator import append_operator
from policies.loader import load_policy_text

APP = "reloaded"
RULE = f'''schema = 1
name = "reload"
[[rule]]
id = "read-users"
effect = "permit"
apps = ["{APP}"]
actions = ["users.get"]
'''


def _quota(limit: int) -> str:
    return RULE + f'''[[quota]]
id = "reads"
apps = ["{APP}"]
action = "users.get"
limit = {limit}
window = "1h"
'''


def _reload_before(monkeypatch: pytest.MonkeyPatch, rig: GateRig, method: str,
                   text: str) -> list[str]:
    """Swap `text` in as the active policy just before the next `ledger.<method>` runs, as
    the host's policy watch does from its own thread while a call waits for the write lock."""
    real: Callable[..., Any] = getattr(rig.ledger, method)
    swapped: list[str] = []

    def reload_first(*a: Any, **kw: Any) -> Any:
        if not swapped:
            policy = load_policy_text(text, "reload.toml")
            rig.gate.policy.policy = policy
            swapped.append(policy.revision)
        return real(*a, **kw)

    monkeypatch.setattr(rig.ledger, method, reload_first)
    return swapped


def _users_get(rig: GateRig) -> Any:
    return rig.gate.handle(rig.session, "users.get",
                           {"user_id": rig.session.caller.app_user_id})


def test_a_quota_lowered_before_the_admission_is_the_one_charged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails before: the second read was admitted under the old limit of 2, two units in the
    window of a quota the active policy says is 1."""
    rig = policy_rig(tmp_path, APP, ["users.read"], {"reload": _quota(2)})
    _users_get(rig)
    swapped = _reload_before(monkeypatch, rig, "admit", _quota(1))
    with pytest.raises(GateError) as refused:
        _users_get(rig)
    assert swapped and refused.value.code == "quota_exceeded"
    charge = rig.gate.policy.current().charges(APP, rig.session.install_id, "users.get")[0]
    assert rig.ledger.quota_state(charge.key, 1, 3600.0).used == 1


def test_a_forbid_added_before_the_admission_refuses_the_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails before: the read was admitted and served on the old revision's permit, after the
    revision that forbids it had been made active."""
    rig = policy_rig(tmp_path, APP, ["users.read"], {"reload": _quota(5)})
    forbid = _quota(5) + f'''[[rule]]
id = "no-more-reads"
effect = "forbid"
apps = ["{APP}"]
actions = ["users.get"]
'''
    swapped = _reload_before(monkeypatch, rig, "admit", forbid)
    with pytest.raises(GateError) as refused:
        _users_get(rig)
    assert swapped and refused.value.code == "permission_denied"
    assert "no-more-reads" in str(refused.value)


def test_no_admission_commits_between_a_reloads_record_and_its_swap(tmp_path: Path) -> None:
    """The host's policy watch writes the new revision's `policy_load` record, then makes it
    active. Fails before: a call whose admission ran between the two was admitted on the old
    revision (a quota of 2), recorded after the record of the revision that allows 1."""
    home = Home(tmp_path / "home").ensure()
    home.default_policy.unlink(missing_ok=True)
    write_policy(home, "reload", _quota(2))
    install(home, write_app(home.root / "src", APP, ["users.read"], [], EMPTY_APP))
    rig = build_rig(home, SystemClock(), APP, group_reads=True)
    assert rig.ledger.batch is not None
    _users_get(rig)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(_users_get(rig))
        except GateError as exc:
            outcome.append(exc.code)

    def record(kind: str, detail: str) -> int:
        seq = append_operator(rig.ledger.audit, kind, detail=detail)
        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        caller.join(0.1)  # an admission let in between the record and the swap ends here
        waiting.append(caller)
        return seq

    waiting: list[threading.Thread] = []
    watch = PolicyWatch(rig.gate.policy, home.policies_dir, record,
                        exclusive=rig.ledger.batch.exclusive)
    write_policy(home, "reload", _quota(1))
    watch.poll()  # seen changing: it must hold still for a whole poll
    assert watch.poll().revision == rig.gate.policy.current().revision
    waiting[0].join(10)
    assert outcome == ["quota_exceeded"]
