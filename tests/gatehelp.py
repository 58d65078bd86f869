"""A real gate over a real home, without children: for the bridge-sequence fuzz target and the
crash-consistency worker. Everything is the production code path (install, consent, tokens,
policy, ledger, embedded server); only the app's child is absent, so calls enter at
`Gate.handle` exactly as a child's Call frame would."""
from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apphelp import install, write_app, write_policy

from host.apps.installs import InstallRecord, InstallStore
from host.clock import Clock, SystemClock
from host.gate.gate import Gate, PolicySource, Session
from host.home import Home
from host.keys import tokens
from host.keys.keyring import Keyring
from host.ledger.ledger import Ledger
from host.server.embedded import EmbeddedServer
from host.server.principals import Caller
from policies.loader import load_policy

if TYPE_CHECKING:  # the fuzz target and the crash workers import this without pytest
    import pytest

APP_ID = "fuzzapp"
ASKED = ["users.read", "users.create", "roles.assign", "livechat.read", "messages.send",
         "persistence"]
GRANTED = ["users.read", "users.create", "roles.assign", "livechat.read"]  # a subset
QUOTA_LIMIT = 3
QUOTA_WINDOW_S = 100

POLICY = f'''
schema = 1
name = "gatehelp"
[[rule]]
id = "fuzz-all"
effect = "permit"
apps = ["{APP_ID}"]
actions = ["users.read", "users.create", "roles.assign", "livechat.read", "messages.send"]
[rule.when]
user_types = ["bot"]
roles = ["bot"]
[[quota]]
id = "fuzz-create"
apps = ["{APP_ID}"]
action = "users.create"
limit = {QUOTA_LIMIT}
window = "{QUOTA_WINDOW_S}s"
scope = "install"
# The loader refuses a roles.assign permit with no quota (lint STK033); this one is wide enough
# never to be what a fuzz run or a test meets.
[[quota]]
id = "fuzz-roles"
apps = ["{APP_ID}"]
action = "roles.assign"
limit = 100000
window = "1h"
scope = "install"
'''


# An app whose code does nothing: the gate tests call the gate in its place.
EMPTY_APP = "from stockade import App\n\nclass TestApp(App):\n    pass\n"


def policy_rig(root: Path, app_id: str, asked: list[str], policies: dict[str, str],
               grants: list[str] | None = None) -> GateRig:
    """A home in `root` deciding by `policies` alone (file name -> text; no shipped default),
    with `app_id` installed asking `asked` (granted `grants`, all by default), and its rig."""
    home = Home(root / "home").ensure()
    home.default_policy.unlink(missing_ok=True)
    for name, text in policies.items():
        write_policy(home, name, text)
    install(home, write_app(home.root / "src", app_id, asked, [], EMPTY_APP), grants)
    return build_rig(home, SystemClock(), app_id)


def install_fuzz_app(home: Home) -> InstallRecord:
    # This home runs on the test's policy alone (the shipped default's call-rate quota would
    # add rows and refusals of its own).
    home.default_policy.unlink(missing_ok=True)
    (home.policies_dir / "gatehelp.toml").write_text(POLICY)
    folder = write_app(home.root / "src", APP_ID, ASKED, [],
                       "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    return install(home, folder, GRANTED)


def add_seat_ceiling(home: Home, ceiling: int = 10) -> None:
    """A policy file with a seat ceiling, so each create also reserves a seat."""
    (home.policies_dir / "seats.toml").write_text(
        f'schema = 1\nname = "seats"\n[workspace]\nmax_active_app_users = {ceiling}\n')


class RecordingServer:
    """The embedded server, recording every action method that reached it."""

    def __init__(self, server: EmbeddedServer) -> None:
        self._server = server
        self.reached: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._server, name)
        if callable(attr) and "_" in name and name.split("_", 1)[0] in (
                "users", "roles", "livechat", "messages"):
            def record(*a: Any, **kw: Any) -> Any:
                self.reached.append(name)
                return attr(*a, **kw)
            return record
        return attr


@dataclass
class GateRig:
    home: Home
    gate: Gate
    session: Session
    server: RecordingServer
    ledger: Ledger
    install: InstallRecord
    installs: InstallStore

    def close(self) -> None:
        """Close the rig's stores (its ledger's flusher thread, every connection). Anything a
        test left broken on purpose (a full disk, a closed store) may refuse: that is not this
        test's concern any more."""
        for close in (self.ledger.close, self.installs.close, self.server._server.close):
            with contextlib.suppress(Exception):
                close()


# Rigs built in this process and not yet closed: `tests/conftest.py` closes each test's own at
# its end (a rig holds a ledger's flusher thread and several connections; a suite of them
# leaked threads and descriptors into every later test).
OPEN_RIGS: list[GateRig] = []


def close_rigs() -> None:
    while OPEN_RIGS:
        OPEN_RIGS.pop().close()


def build_rig(home: Home, clock: Clock, app_id: str = APP_ID, *,
              group_reads: bool = False, kept: bool = False) -> GateRig:
    """Open a home that already has the app `app_id` (the fuzz app by default) installed and
    build its session. `group_reads`: the ledger group-commits as a running host's does.
    `kept`: the caller keeps the rig past the test that built it (the fuzz target's, built
    once a process), so it is not closed when that test ends."""
    store = InstallStore(home.host_store)
    rec = store.by_app(app_id)
    assert rec is not None
    server = RecordingServer(EmbeddedServer(home.server_db, clock))
    ledger = Ledger(home.host_store, clock, group_reads=group_reads)
    keyring = Keyring.open(home.keys_dir)
    policy = load_policy(home.policies_dir)
    gate = Gate(server=server, ledger=ledger, installs=store,  # type: ignore[arg-type]
                policy=PolicySource(policy), clock=clock,
                resolve=lambda host: ["93.184.216.34"])
    sid = secrets.token_hex(8)
    # The claims a host records for what it minted, with a lifetime no host mints or verifies
    # (`tokens.MAX_TTL_S`): fuzz clocks run far, and the gate checks only `exp` against them.
    now = clock.now()
    claims = tokens.Claims(app=app_id, ins=rec.install_id, sid=sid, gen=rec.generation,
                           epoch=store.epoch(), perms=sorted(rec.grants), pol=policy.revision,
                           iat=now, exp=now + 10 * 365 * 86400.0, jti=secrets.token_hex(12),
                           kid=keyring.current)
    session = Session(app_id=app_id, install_id=rec.install_id, session_id=sid, claims=claims,
                      grants=rec.grants,
                      caller=Caller(app_id=app_id, install_id=rec.install_id,
                                    app_user_id=rec.app_user_id))
    rig = GateRig(home, gate, session, server, ledger, rec, store)
    if not kept:
        OPEN_RIGS.append(rig)
    return rig


def change_before(monkeypatch: pytest.MonkeyPatch, ledger: Ledger, method: str, home: Home,
                  change: Callable[[InstallStore], object], *, every: bool = False) -> list[int]:
    """Make `ledger.<method>` (an admission) first commit `change` to the installs from a
    connection of its own, as the CLI in another process would: once, or before `every` call.
    Returns a list that grows by one per change made."""
    real, made = getattr(ledger, method), list[int]()

    def changed_first(*a: Any, **kw: Any) -> Any:
        if every or not made:
            with InstallStore(home.host_db) as other:
                change(other)
            made.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(ledger, method, changed_first)
    return made
