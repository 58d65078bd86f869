"""Every call a loaded policy decides is one the gate can record (DESIGN rules 3, 9 and 13).

Attack (held before the fix): an audit record names at most 64 rules and 16 quota states
(`host/ledger/records.py`). A set with 65 permits of one app's `users.get`, 65 near-miss
permits of a refused `users.create`, or 17 quotas on one action loaded without a finding, and
every such call then raised `AuditError` out of `Gate.handle`: nothing recorded, a refusal
neither audited nor charged to the refusal budget. Now a decision names at most 32 rules (the
first by id; a REST route's record names those of `rest.call` and of its action together), and
a set that could charge one call more quotas than a record holds is refused (STK039), counting
those of the actions one call may also be charged as (`rest.call`, what a role amounts to).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app
from gatehelp import GateRig, build_rig

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.ledger import records
from policies import recordfit, types
from policies.loader import load

APP = "many"
HEAD = 'schema = 1\nname = "many"\n'
# Rule ids one decision names (`policies.types.MAX_DECISION_RULES`, held below).
CAP = 32
INFO = '[rule.when]\nrest_routes = ["GET /api/v1/users.info"]\n'


def _rules(n: int, actions: str, when: str = "", first: int = 0) -> str:
    return "".join(f'[[rule]]\nid = "r{i:03}"\neffect = "permit"\napps = ["{APP}"]\n'
                   f'actions = {actions}\n{when}' for i in range(first, first + n))


def _quotas(n: int, action: str, first: int = 0) -> str:
    return "".join(f'[[quota]]\nid = "q{i}"\napps = ["{APP}"]\naction = "{action}"\n'
                   f'limit = 1000\nwindow = "{i + 1}s"\n' for i in range(first, first + n))


def _decision(rig: GateRig) -> dict[str, Any]:
    (found,) = [e.body for e in rig.ledger.audit.tail(3) if e.body["kind"] == "decision"][-1:]
    return found


def test_calls_decided_by_many_rules_are_recorded(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    home.default_policy.unlink(missing_ok=True)
    (home.policies_dir / "many.toml").write_text(
        HEAD + _rules(40, '["rest.call"]', INFO) + _rules(65, '["users.get"]', "", 100)
        + _rules(65, '["users.create"]', '[rule.when]\nuser_types = ["user"]\n', 200)
        + _quotas(8, "*") + _quotas(8, "users.get", 8) + _quotas(1, "users.create", 16))
    install(home, write_app(home.root / "src", APP, ["users.read", "users.create",
                                                     "server.rest"], [],
                            "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    rig = build_rig(home, SystemClock(), APP)
    me = rig.install.app_user_id
    assert rig.gate.handle(rig.session, "users.get", {"user_id": me})["id"] == me
    got = _decision(rig)
    assert got["allowed"] and len(got["rules"]) == CAP
    assert len(got["quota"]) == 16  # 8 on "*" and 8 on users.get: what a record holds
    with pytest.raises(GateError, match=r"no permit rule allows users\.create"):
        rig.gate.handle(rig.session, "users.create",
                        {"username": "abc", "name": "A", "type": "bot"})
    got = _decision(rig)
    assert not got["allowed"] and len(got["rules"]) == CAP
    # A mapped route: the rules of rest.call and of users.get in one record; the quotas on "*"
    # are one ring for both (charged once).
    out = rig.gate.handle(rig.session, "rest.call", {
        "method": "GET", "route": "/api/v1/users.info", "body": {"userId": me}})
    assert out["status"] == 200
    got = _decision(rig)
    assert got["allowed"] and len(got["rules"]) == 2 * CAP
    assert len(got["quota"]) == 16


OVER = {
    "17 quotas on one action": _rules(1, '["users.get"]') + _quotas(17, "users.get"),
    "quotas on * and on the action": _rules(1, '["users.get"]') + _quotas(9, "*")
    + _quotas(8, "users.get", 9),
    # A mapped route is charged as its action too: both actions' quotas meet one call.
    "quotas of rest.call and of an action": _rules(1, '["rest.call"]', INFO)
    + _rules(1, '["users.get"]', "", 1) + _quotas(9, "rest.call") + _quotas(8, "users.get", 9),
}


@pytest.mark.parametrize("name", sorted(OVER))
def test_a_set_that_charges_a_call_more_quotas_than_a_record_holds_is_refused(
        tmp_path: Path, name: str) -> None:
    (tmp_path / "p.toml").write_text(HEAD + OVER[name])
    res = load([tmp_path])
    assert res.policy is None
    assert "STK039" in {f.code for f in res.findings}, [f.code for f in res.findings]


def test_the_engines_caps_are_the_records() -> None:
    assert types.MAX_DECISION_RULES == CAP and 2 * CAP == records.MAX_RULES
    assert recordfit.MAX_RECORD_QUOTAS == records.MAX_QUOTAS
