"""The seat ceiling cannot be walked around (issue 19, DESIGN rules 8 and 11).

The ceiling caps *active app-created users*. It used to be a counter that every successful
`users.deactivate` decremented: deactivating one user twice, or the app's own app user (which
never held a seat), freed seats that were never taken, and an app reached 7 active users under a
ceiling of 2. These tests attack that through a real host: seats are counted from the server's
users (the truth) plus the creations admitted but not yet applied, so a user frees its seat
once, a reactivation takes it again, and the count is the same after a restart and for two hosts
racing on one home.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from apphelp import install, write_app, write_policy
from gatehelp import build_rig

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.runtime import Host, HostConfig
from host.server.principals import SYSTEM

QUIET = HostConfig(watch=False, use_zygote=False)  # calls enter at the gate; no child runs
APP = "seatapp"
CEILING = 2
POLICY = f'''
schema = 1
name = "seats"
[workspace]
max_active_app_users = {CEILING}
[[rule]]
id = "seatapp-bots"
effect = "permit"
apps = ["{APP}"]
actions = ["users.create", "users.deactivate"]
[rule.when]
user_types = ["bot"]
roles = ["bot"]
'''


def _home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "seats", POLICY)
    folder = write_app(home.root / "src", APP, ["users.create", "users.deactivate"], [],
                       "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    install(home, folder)
    return home


def _create(host: Host, rig: Any, name: str) -> dict[str, Any] | None:
    """A bot created through the host's gate, or None when the seat ceiling refused it."""
    try:
        user: dict[str, Any] = host.gate.handle(
            rig.session, "users.create",
            {"username": name, "name": name.title(), "type": "bot", "roles": ["bot"]})
        return user
    except GateError as exc:
        assert exc.code == "quota_exceeded" and "workspace:seats" in exc.message, exc.message
        return None


def _deactivate(host: Host, rig: Any, user_id: str) -> None:
    host.gate.handle(rig.session, "users.deactivate", {"user_id": user_id})


def test_repeated_and_foreign_deactivations_free_no_seat(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with Host(home, config=QUIET) as host:
        rig = build_rig(home, SystemClock(), APP)
        a, b = _create(host, rig, "bot-a"), _create(host, rig, "bot-b")
        assert a is not None and b is not None
        assert _create(host, rig, "bot-x") is None  # the ceiling holds
        # The walk-around: deactivate one user again and again (idempotent, each "succeeds"),
        # and the app's own app user, which never held a seat.
        for _ in range(4):
            _deactivate(host, rig, a["id"])
            _deactivate(host, rig, rig.session.caller.app_user_id)
        made = [_create(host, rig, f"bot-{i}") for i in range(5)]
        assert sum(u is not None for u in made) == 1  # `a` freed exactly one seat
        assert host.server.users_count_active_app_created() == CEILING
        assert host.ledger.seats_in_use(host.server.seats_in_use) == CEILING


def test_reactivation_takes_the_seat_again_and_restarts_keep_count(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with Host(home, config=QUIET) as host:
        rig = build_rig(home, SystemClock(), APP)
        a, b = _create(host, rig, "bot-a"), _create(host, rig, "bot-b")
        assert a is not None and b is not None
        _deactivate(host, rig, a["id"])
        c = _create(host, rig, "bot-c")
        assert c is not None
        # The operator reactivates `a` (another route to an active app-created user): three
        # active against a ceiling of two, so the app creates nothing until two are gone.
        host.server.users_set_active(SYSTEM, a["id"], True)
        _deactivate(host, rig, c["id"])
        assert _create(host, rig, "bot-d") is None
    with Host(home, config=QUIET) as again:  # a restart counts the same users
        rig = build_rig(home, SystemClock(), APP)
        assert _create(again, rig, "bot-e") is None
        _deactivate(again, rig, b["id"])
        assert _create(again, rig, "bot-f") is not None
        assert _create(again, rig, "bot-g") is None
        assert again.server.users_count_active_app_created() == CEILING


def test_two_hosts_racing_never_pass_the_ceiling(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with Host(home, config=QUIET) as first, Host(home, config=QUIET) as second:
        rigs = [(first, build_rig(home, SystemClock(), APP)),
                (second, build_rig(home, SystemClock(), APP))]
        made: list[dict[str, Any]] = []
        lock = threading.Lock()
        start = threading.Barrier(4)

        def worker(n: int) -> None:
            host, rig = rigs[n % 2]
            start.wait(10)
            for i in range(4):
                u = _create(host, rig, f"race-{n}-{i}")
                if u is not None:
                    with lock:
                        made.append(u)
                    # Free the seat by deactivating twice: only the first may count.
                    _deactivate(host, rig, u["id"])
                    _deactivate(host, rig, u["id"])
                    _deactivate(host, rig, rig.session.caller.app_user_id)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert made, "no create was admitted at all"
        assert first.server.users_count_active_app_created() <= CEILING
        # Every admitted create freed its seat exactly once: nothing is left counted.
        assert first.ledger.seats_in_use(first.server.seats_in_use) == 0
