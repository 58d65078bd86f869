"""The harness's policy step decides with the host's engine on the facts the gate would supply:
own users only (unless any_user), the seat ceiling, quotas over a sliding window."""
from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import PermissionDenied, QuotaExceeded
from sandbox.harness_policy import PolicyCheck, seats_in_use
from sandbox.harness_server import FakeServer

POLICY = '''schema = 1
name = "t"
[workspace]
max_active_app_users = 1
[[rule]]
id = "make-bots"
effect = "permit"
apps = ["a"]
actions = ["users.create", "users.deactivate"]
[rule.when]
user_types = ["bot"]
[[quota]]
id = "two-per-hour"
apps = ["a"]
action = "users.create"
limit = 2
window = "1h"
[[quota]]
id = "deact"
apps = ["a"]
action = "users.deactivate"
limit = 9
window = "1h"
'''


def _setup(tmp_path: Path) -> tuple[PolicyCheck, FakeServer]:
    (tmp_path / "p.toml").write_text(POLICY)
    t = iter(range(1, 10_000))
    return PolicyCheck.load(tmp_path / "p.toml"), FakeServer("a", lambda: float(next(t)))


def _call(pc: PolicyCheck, server: FakeServer, action: str, args: dict, now: float) -> None:
    grants = frozenset({"users.create", "users.deactivate"})
    pc.check("a", grants, action, args, pc.facts(server, server.app_user["id"], action, args),
             now, lambda: seats_in_use(server))


def test_own_users_only_and_seat_ceiling(tmp_path: Path) -> None:
    pc, server = _setup(tmp_path)
    bot = {"username": "bot1", "name": "B", "type": "bot"}
    _call(pc, server, "users.create", bot, 10.0)
    mine = server.users_create(**bot)
    # The seat ceiling (1) is reached: the next creation is refused like the host refuses it.
    with pytest.raises(QuotaExceeded, match="seat ceiling"):
        _call(pc, server, "users.create", {**bot, "username": "bot2"}, 11.0)
    # An operator's user is not the app's: the rule has no any_user.
    theirs = server.new_user("human", "H", "user")
    with pytest.raises(PermissionDenied, match="own users only"):
        _call(pc, server, "users.deactivate", {"user_id": theirs["id"]}, 12.0)
    _call(pc, server, "users.deactivate", {"user_id": mine["id"]}, 13.0)


def test_quota_window_slides(tmp_path: Path) -> None:
    pc, server = _setup(tmp_path)
    for n, now in enumerate((0.0, 10.0)):
        _call(pc, server, "users.create", {"username": f"b{n}x", "name": "B", "type": "bot"}, now)
    with pytest.raises(QuotaExceeded, match="two-per-hour is full"):
        _call(pc, server, "users.create", {"username": "b9x", "name": "B", "type": "bot"}, 3599.0)
    # One hour after the first unit, one frees (seats are not counted: no user was made).
    _call(pc, server, "users.create", {"username": "b9x", "name": "B", "type": "bot"}, 3600.0)
