"""Through the real gate (install, consent, token, policy, quota, audit) to a stand-in
workspace process: an app's call against a workspace that fails gets a typed error in bounded
time, and its quota unit follows what the workspace actually did."""
from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import pytest
from gatehelp import APP_ID, QUOTA_LIMIT, QUOTA_WINDOW_S, install_fuzz_app
from rchelp import Standin, connect

from host.apps.installs import InstallStore
from host.clock import SystemClock
from host.errors import GateError
from host.gate.gate import Gate, PolicySource, Session
from host.home import Home
from host.keys import tokens
from host.keys.keyring import Keyring
from host.ledger.ledger import Ledger
from host.server.principals import Caller
from host.server.remote import config
from host.server.remote.client import RcClient
from policies.loader import load_policy


class Rig:
    def __init__(self, home: Home, s: Standin, *, group_reads: bool = False) -> None:
        clock = SystemClock()
        rec = install_fuzz_app(home)
        connect(home, s)
        self.remote = config.open_remote(home, clock, client=RcClient(
            s.url, s.user_id, s.token, timeout_s=0.5, deadline_s=1.5))
        app_user = self.remote.create_app_user(APP_ID, "Fuzz")
        store = InstallStore(home.host_db)
        self.ledger = Ledger(home.host_db, clock, group_reads=group_reads)
        keyring = Keyring.open(home.keys_dir)
        policy = load_policy(home.policies_dir)
        self.gate = Gate(server=self.remote, ledger=self.ledger, installs=store,
                         policy=PolicySource(policy), clock=clock)
        sid = secrets.token_hex(8)
        tok = tokens.issue(keyring, clock, app_id=APP_ID, install_id=rec.install_id,
                           session_id=sid, generation=rec.generation, epoch=store.epoch(),
                           permissions=rec.grants, policy_hash=policy.revision)
        self.session = Session(app_id=APP_ID, install_id=rec.install_id, session_id=sid,
                               claims=tokens.verify(tok, keyring, clock, session_id=sid),
                               grants=rec.grants, caller=Caller(APP_ID, rec.install_id,
                                                                app_user["id"]))
        self.quota_key = f"install:{rec.install_id}:users.create#fuzz-create"

    def create(self, username: str) -> object:
        return self.gate.handle(self.session, "users.create", {
            "username": username, "name": "B", "type": "bot", "roles": ["bot"]})

    def used(self) -> int:
        return self.ledger.quota_state(self.quota_key, QUOTA_LIMIT, QUOTA_WINDOW_S).used


@pytest.fixture()
def rig(clean: Standin, tmp_path: Path) -> Rig:
    return Rig(Home(tmp_path / "host").ensure(), clean)


def test_a_call_reaches_the_workspace_through_the_gate(rig: Rig, clean: Standin) -> None:
    user = rig.create("gate-ok-1")
    assert isinstance(user, dict) and user["created_by_app"] == APP_ID
    assert rig.used() == 1
    assert rig.remote.seats_in_use([]) == 1


def test_a_5xx_write_is_a_typed_error_and_its_unit_follows_the_workspace(
        rig: Rig, clean: Standin) -> None:
    clean.fault("users.create", "status", 503, times=1)
    with pytest.raises(GateError) as err:
        rig.create("gate-503")
    assert err.value.code == "timeout" and "answered 503" in err.value.message
    # Sent, no answer saying it applied: the gate asked the workspace (no such user) and gave
    # the unit back; nothing is left pending.
    assert rig.used() == 0 and rig.ledger.pending_intents() == []


def test_a_write_applied_behind_a_timeout_keeps_its_unit_and_its_owner(
        rig: Rig, clean: Standin) -> None:
    clean.fault("users.create", "delay-after", 2.0, times=1)
    with pytest.raises(GateError) as err:
        rig.create("gate-slow")
    assert err.value.code == "timeout" and "may have been applied" in err.value.message
    assert rig.used() == 1 and rig.ledger.pending_intents() == []
    uid = clean.admin("GET", "users.info", params={"username": "gate-slow"})["user"]["_id"]
    assert rig.remote.user_created_by(uid) == APP_ID
    assert rig.remote.seats_in_use([]) == 1


def test_a_read_against_a_workspace_that_is_down_is_a_typed_error(
        tmp_path: Path) -> None:
    s = Standin(tmp_path / "s").start()
    r = Rig(Home(tmp_path / "host").ensure(), s)
    s.stop()
    with pytest.raises(GateError) as err:
        r.gate.handle(r.session, "users.get", {"user_id": "someone"})
    assert err.value.code == "timeout" and "refused the connection" in err.value.message


def test_install_and_uninstall_act_on_the_connected_workspace(clean: Standin,
                                                              tmp_path: Path) -> None:
    """In a connected home, `app install` makes the app's user on the workspace, and uninstall
    (`--users deactivate --agents remove`) deactivates there what the app created."""
    from apphelp import install, write_app

    from host.apps import lifecycle_seams

    home = Home(tmp_path / "host").ensure()
    connect(home, clean)
    folder = write_app(home.root / "src", "uninstaller", ["users.create"], [],
                       "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    rec = install(home, folder)
    doc = clean.admin("GET", "users.info", params={"userId": rec.app_user_id})["user"]
    assert doc["username"] == "app.uninstaller" and doc["active"]
    remote = config.open_remote(home, SystemClock())
    made = remote.users_create(Caller("uninstaller", rec.install_id, rec.app_user_id),
                               "made-by-uninstaller", "M", "user", op_id="op-uninst-1")
    remote.livechat_add_agent(Caller("uninstaller", rec.install_id, rec.app_user_id),
                              made["id"], op_id="op-uninst-2")
    assert lifecycle_seams.app_agents(home, rec) == 2  # its user and its app user
    assert lifecycle_seams.remove_app_agents(home, rec) == 1  # the app user was no agent
    assert lifecycle_seams.deactivate_app_users(home, rec) == 1
    for uid in (made["id"], rec.app_user_id):
        assert clean.admin("GET", "users.info", params={"userId": uid})["user"]["active"] is False
    assert remote.seats_in_use([]) == 0


def test_can_i_looks_facts_up_on_the_connected_workspace(rig: Rig, clean: Standin) -> None:
    """`stockade can-i` in a connected home asks Stockade's record of the workspace who created
    a user (the embedded server of the home has never seen it)."""
    import json
    import subprocess

    from rchelp import STOCKADE

    user = rig.create("gate-can-i")
    assert isinstance(user, dict)
    r = subprocess.run([STOCKADE, "--home", str(rig.remote.owned.store.path.parent), "can-i",
                        APP_ID, "roles.assign", "--arg", f"user_id={user['id']}", "--arg",
                        "role=bot", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["allowed"] is True
    # Whether a role carries power is read from the workspace's permission table: when it
    # cannot be read, one line that says so and how to answer without it, never a traceback.
    clean.fault("permissions.listAll", "status", 503, times=50)
    r = subprocess.run([STOCKADE, "--home", str(rig.remote.owned.store.path.parent), "can-i",
                        APP_ID, "roles.assign", "--arg", f"user_id={user['id']}", "--arg",
                        "role=bot"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "permissions.listAll" in r.stderr
    assert "--fact role_privileged=" in r.stderr


def test_a_remote_writes_success_is_committed_at_once(clean: Standin, tmp_path: Path) -> None:
    """Against a workspace the gate cannot settle every write from an op log (an agent's
    display name is kept by Stockade), so a write's success is never left to the group commit
    there (`ServerAdapter.op_log_exact`), as it is against the embedded server. "Committed" is
    what a second connection sees."""
    home = Home(tmp_path / "host").ensure()
    rig = Rig(home, clean, group_reads=True)
    assert rig.ledger.batch is not None and rig.remote.op_log_exact is False
    uid = rig.create("held-remote")["id"]  # type: ignore[index]

    def committed_outcomes() -> int:
        with sqlite3.connect(home.host_db) as c:
            return sum(1 for (b,) in c.execute("SELECT body FROM audit")
                       if '"kind":"outcome"' in b and '"roles.assign"' in b)
    with rig.ledger.batch._commit:  # the flusher cannot commit: only the call itself can
        rig.gate.handle(rig.session, "roles.assign", {"user_id": uid, "role": "bot"})
        assert committed_outcomes() == 1 and rig.ledger.batch.pending() == 0
        assert Ledger(home.host_db, SystemClock()).pending_intents() == []
