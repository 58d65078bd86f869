"""A policy the quota store cannot enforce never loads, and a charge it refuses is still a refusal
that is audited and counted (DESIGN rules 3 and 13).

Attacks, each of which held on the code before this file: lint and the quota store disagreed
on their bounds (a limit over 100,000 loaded with no finding, a window over 366 days or a seat
ceiling over 10,000,000 with a warning), and the store then raised `ValueError` inside the
admission, outside the gate's refusals: the app saw `invalid_argument`, no record was written
and no refusal-budget unit taken, so an app could be refused without bound and never stopped.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy
from gatehelp import GateRig, build_rig

from host.clock import SystemClock
from host.errors import GateError, RefusalBudgetExceeded
from host.home import Home
from host.ledger.refusals import REFUSAL_BUDGET
from host.runtime import Host, HostConfig
from policies.loader import PolicyLoadError, load_policy_text, parse_text
from policies.policy import Policy, compile_policy
from policies.quota import MAX_QUOTA_LIMIT, MAX_SEATS, MAX_WINDOW_S

APP = "qapp"
PERMS = ["users.read", "users.create", "persistence", "server.rest"]
RULES = f'''
schema = 1
name = "q"
[[rule]]
id = "q-all"
effect = "permit"
apps = ["{APP}"]
actions = ["users.read", "users.create", "persistence", "rest.call"]
[rule.when]
user_types = ["bot"]
rest_routes = ["GET /api/v1/roles.list"]
rest_fields = []
'''
QUOTA = '''
[[quota]]
id = "q-{action}"
apps = ["{app}"]
action = "{action}"
limit = {limit}
{window}
'''


def _quota(action: str, limit: int = 5, window: str = 'window = "1h"') -> str:
    return QUOTA.format(app=APP, action=action, limit=limit, window=window)


def _rules(seats: int | None = None) -> str:
    ws = "" if seats is None else f"[workspace]\nmax_active_app_users = {seats}\n"
    return RULES.replace('name = "q"\n', 'name = "q"\n' + ws)


def _sound() -> str:
    """Every action the tests call, under a quota the store can enforce."""
    return RULES + "".join(_quota(a) for a in (
        "users.get_by_username", "users.create", "persistence.put", "rest.call"))


@pytest.mark.parametrize(("seats", "quota"), [
    (None, _quota("users.get_by_username", MAX_QUOTA_LIMIT + 1)),
    (None, _quota("users.get_by_username", 200_000)),
    (None, _quota("users.get_by_username", window='window = "367d"')),
    (None, _quota("users.get_by_username", window=f"window_s = {int(MAX_WINDOW_S) + 1}")),
    (MAX_SEATS + 1, ""),
], ids=["limit", "limit-2e5", "window", "window_s", "seats"])
def test_values_past_the_quota_stores_bounds_never_load(seats: int | None, quota: str) -> None:
    with pytest.raises(PolicyLoadError, match="STK019") as exc:
        load_policy_text(_rules(seats) + _quota("users.create") + quota)
    assert {f.severity for f in exc.value.findings if f.code == "STK019"} == {"error"}


def test_the_bounds_themselves_load() -> None:
    p = load_policy_text(
        _rules(MAX_SEATS) + _quota("users.create")
        + _quota("users.get_by_username", MAX_QUOTA_LIMIT, f"window_s = {int(MAX_WINDOW_S)}"))
    assert p.seat_ceiling == MAX_SEATS


def _unlinted(text: str) -> Policy:
    """A policy the loader refuses, compiled anyway: the gate must hold even for a policy that
    reached it by another path."""
    src, findings = parse_text(text, "<unlinted>")
    assert src.model is not None and not findings, findings
    return compile_policy([(src.name, src.model)])


@dataclass
class Rigged:
    host: Host
    rig: GateRig


@pytest.fixture()
def rigged(tmp_path: Path) -> Iterator[Rigged]:
    home = Home(tmp_path / "home").ensure()
    home.default_policy.unlink(missing_ok=True)
    write_policy(home, "q", _sound())
    install(home, write_app(home.root / "src", APP, PERMS, [],
                            "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        yield Rigged(host, build_rig(home, SystemClock(), APP))


CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "read": ("users.get_by_username", {"username": "admin"}),  # Ledger.admit
    "creation": ("users.create", {"username": "bot-1", "name": "B", "type": "bot"}),  # seats
    "store-write": ("persistence.put", {"key": "k", "value": "v"}),  # Ledger.admit_apply
    "rest-route": ("rest.call", {"method": "GET", "route": "/api/v1/roles.list"}),  # restbridge
}


@pytest.mark.parametrize("path", list(CALLS))
def test_a_charge_the_store_refuses_is_an_audited_counted_refusal(rigged: Rigged,
                                                                  path: str) -> None:
    action, args = CALLS[path]
    if path == "creation":
        bad = _rules(MAX_SEATS + 1) + _quota(action)
    else:
        bad = RULES + _quota(action, 200_000)
    rigged.host.gate.policy.policy = _unlinted(bad)
    gate, session, audit = rigged.host.gate, rigged.rig.session, rigged.host.ledger.audit
    before = audit.head()[0]
    with pytest.raises(GateError) as exc:
        gate.handle(session, action, dict(args))
    assert exc.value.code == "permission_denied" and "cannot enforce" in str(exc.value)
    assert audit.head()[0] == before + 1
    (rec,) = [e.body for e in audit.tail(1)]
    assert rec["allowed"] is False and rec["code"] == "quota_invalid", rec
    assert rigged.host.server.count_users_created_by(APP) == 0
    over = 0
    for _ in range(REFUSAL_BUDGET + 5):  # every refusal takes a unit of the budget
        try:
            gate.handle(session, action, dict(args))
        except RefusalBudgetExceeded:
            over += 1
        except GateError:
            pass
    assert over >= 5
