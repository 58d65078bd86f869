"""The gate, end to end through a real confined child: every refusal is an error the app sees,
naming what was missing, and is audited; quotas hold; revocation reaches a running child."""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy

from host.apps.installs import InstallRecord, InstallStore
from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import open_readonly
from host.runtime import Host, HostConfig
from host.server.errors import NotFound
from host.server.principals import SYSTEM
from host.supervise.child import ChildDied

PROBE_SRC = '''
from stockade import App, PermissionDenied, QuotaExceeded, Conflict, InvalidArgument, NotFound

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        out = []
        for step in event["steps"]:
            action, kwargs = step[0], step[1]
            bridge, name = action.split(".")
            try:
                result = getattr(getattr(ctx, bridge), name)(**kwargs)
                out.append(["ok", result.get("id") if isinstance(result, dict) else result])
            except PermissionDenied as e:
                out.append(["PermissionDenied", str(e)])
            except QuotaExceeded as e:
                out.append(["QuotaExceeded", str(e)])
            except Conflict as e:
                out.append(["Conflict", str(e)])
            except InvalidArgument as e:
                out.append(["InvalidArgument", str(e)])
            except NotFound as e:
                out.append(["NotFound", str(e)])
        return out
'''

POLICY = '''
schema = 1
name = "gate"
[[rule]]
id = "prober-users"
effect = "permit"
apps = ["prober"]
actions = ["users.read", "users.create", "livechat.read", "roles.assign"]
[rule.when]
user_types = ["bot"]
roles = ["bot"]

[[quota]]
id = "prober-create"
apps = ["prober"]
action = "users.create"
limit = 2
window = "1h"
scope = "install"
'''


@pytest.fixture()
def host(tmp_path: Path):
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "gate", POLICY)
    folder = write_app(tmp_path / "apps", "prober",
                       ["users.read", "users.create", "livechat.read", "roles.assign",
                        "messages.send"],
                       ["livechat.room_started"], PROBE_SRC)
    # the operator grants a subset: no messages.send
    install(home, folder, ["users.read", "users.create", "livechat.read", "roles.assign"])
    with Host(home) as h:
        yield h


def _run(h: Host, steps: list) -> list:
    runner = next(iter(h.runners.values()))
    return runner.submit("livechat.room_started", {"steps": steps}, 5.0).result(15)


def _audit(h: Host) -> list[dict]:
    log = open_readonly(h.home.host_db, SystemClock())
    conn = log.store.conn()
    return [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit ORDER BY seq")]


def test_ungranted_permission_is_a_named_denial_and_audited(host: Host) -> None:
    (res,) = _run(host, [["messages.send", {"room_id": "r1", "text": "hi"}]])
    assert res[0] == "PermissionDenied"
    assert "messages.send" in res[1] and "grant" in res[1]
    denials = [r for r in _audit(host) if r.get("allowed") is False]
    assert denials and denials[-1]["action"] == "messages.send"
    assert denials[-1]["code"] == "permission_denied"
    assert "hi" not in json.dumps(denials[-1])  # arguments are digested, never stored


def test_policy_argument_rule_refuses_and_names_the_rule(host: Host) -> None:
    res = _run(host, [["users.create", {"username": "u-one", "name": "U", "type": "user"}],
                      ["users.create", {"username": "u-two", "name": "U", "type": "bot",
                                        "roles": ["admin"]}]])
    assert res[0][0] == "PermissionDenied" and "user" in res[0][1]
    assert res[1][0] == "PermissionDenied" and "admin" in res[1][1].lower()
    assert host.server.users_count_active_app_created() == 0


def test_quota_is_exact_and_the_app_sees_quota_exceeded(host: Host) -> None:
    steps = [["users.create", {"username": f"bot-{i}", "name": "B", "type": "bot"}]
             for i in range(4)]
    res = _run(host, steps)
    assert [r[0] for r in res] == ["ok", "ok", "QuotaExceeded", "QuotaExceeded"]
    assert "prober-create" in res[2][1] or "users.create" in res[2][1]
    created = [u for u in (host.server.users_get_by_username(None, f"bot-{i}")  # type: ignore[arg-type]
                           for i in range(2))]
    assert all(u["created_by_app"] == "prober" for u in created)
    recs = _audit(host)
    assert sum(1 for r in recs if r.get("code") == "quota_exceeded") == 2
    # every allowed write has an outcome record after it
    allowed = [r for r in recs if r.get("kind") == "decision" and r.get("allowed")
               and r.get("action") == "users.create"]
    outcomes = [r for r in recs if r.get("kind") == "outcome"]
    assert len(allowed) == 2 and len(outcomes) >= 2


def test_failed_server_write_refunds_the_unit(host: Host) -> None:
    res = _run(host, [["users.create", {"username": "dup-bot", "name": "B", "type": "bot"}],
                      ["users.create", {"username": "DUP-bot", "name": "B", "type": "bot"}],
                      ["users.create", {"username": "other-bot", "name": "B", "type": "bot"}]])
    # the conflict applied nothing, so its unit came back and the third create fits the quota
    assert [r[0] for r in res] == ["ok", "Conflict", "ok"]


def test_own_users_rule_blocks_acting_on_foreign_users(host: Host) -> None:
    from host.server.principals import SYSTEM

    human = host.server.users_create(SYSTEM, "human-agent", "H", "user")
    (res,) = _run(host, [["roles.assign", {"user_id": human["id"], "role": "bot"}]])
    assert res[0] == "PermissionDenied" and "created" in res[1]


def test_disabling_the_install_revokes_the_running_child(host: Host) -> None:
    runner = next(iter(host.runners.values()))
    assert _run(host, [["users.get_by_username", {"username": "app.prober"}]])[0][0] == "ok"
    child = runner.child
    assert child is not None and not child.dead
    with InstallStore(host.home.host_db) as store:  # as the CLI would, from another connection
        store.set_enabled(runner.install_id, False, "operator disabled")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not child.dead:
        time.sleep(0.05)
    assert child.dead
    assert runner.install_id not in host.runners


def test_audit_chain_verifies_after_traffic(host: Host) -> None:
    _run(host, [["users.get_by_username", {"username": "app.prober"}],
                ["messages.send", {"room_id": "x", "text": "no"}]])
    assert open_readonly(host.home.host_db, SystemClock()).verify().ok


def test_unfinished_intent_is_reconciled_on_start(tmp_path: Path) -> None:
    """A crash between the audited decision and its outcome: the next start settles it."""
    from host.ledger.audit import AuditRecord
    from host.ledger.ledger import Ledger
    from host.ledger.quota import QuotaCharge  # noqa: F401 - documents the charge type used below
    from policies.types import QuotaCharge as Charge

    home = Home(tmp_path / "home").ensure()
    ledger = Ledger(home.host_db, SystemClock())
    charge = Charge(key="install:x:users.create", limit=1, window_s=3600, scope="install")
    adm = ledger.admit(AuditRecord(kind="decision", app_id="a", install_id="x",
                                   action="users.create", op_id="op_lost", write=True,
                                   args_digest="0" * 64), [charge])
    assert adm.allowed
    ledger.close()
    with Host(home) as h:  # server never saw op_lost: the unit is refunded, outcome written
        assert h.ledger.pending_intents() == []
        state = h.ledger.quota_state("install:x:users.create", 1, 3600)
        assert state.used == 0
    conn = sqlite3.connect(home.host_db)
    bodies = [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit ORDER BY seq")]
    assert bodies[-1]["kind"] == "outcome" and bodies[-1]["reconciled"] is True


def _prober_home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "gate", POLICY)
    install(home, write_app(tmp_path / "apps", "prober", ["users.read", "livechat.read"],
                            ["livechat.room_started"], PROBE_SRC))
    return home


def test_expired_token_revokes_the_session(tmp_path: Path) -> None:
    from host.clock import ManualClock

    home = _prober_home(tmp_path)
    clock = ManualClock(start=time.time())
    # The watcher off: it would end the expiring session on its own (the next test) and race
    # the call that shows the gate itself refuses the expired token.
    with Host(home, clock=clock, config=HostConfig(watch=False)) as h:
        runner = next(iter(h.runners.values()))
        step = [["users.get_by_username", {"username": "app.prober"}]]
        assert runner.submit("livechat.room_started", {"steps": step}, 5).result(15)[0][0] == "ok"
        first = runner.child
        clock.advance(25 * 3600)  # past the token's 24 h lifetime
        (res,) = runner.submit("livechat.room_started", {"steps": step}, 5).result(15)
        assert res[0] == "PermissionDenied" and "expired" in res[1]
        assert first is not None and first.dead  # the host ended that session
        # the next event runs in a fresh child with a fresh token
        (res,) = runner.submit("livechat.room_started", {"steps": step}, 5).result(15)
        assert res[0] == "ok" and runner.child is not first


def test_watcher_ends_an_expiring_session_without_a_call(tmp_path: Path) -> None:
    from host.clock import ManualClock

    clock = ManualClock(start=time.time())
    with Host(_prober_home(tmp_path), clock=clock) as h:
        runner = next(iter(h.runners.values()))
        step = [["users.get_by_username", {"username": "app.prober"}]]
        assert runner.submit("livechat.room_started", {"steps": step}, 5).result(15)[0][0] == "ok"
        first = runner.child
        clock.advance(25 * 3600)  # past the token's 24 h lifetime; no call is made
        deadline = time.monotonic() + 10
        while (first is not None and not first.dead) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first is not None and first.dead  # the child holding it ran on, else
        fresh = next(iter(h.runners.values()))
        (res,) = fresh.submit("livechat.room_started", {"steps": step}, 5).result(15)
        assert res[0] == "ok" and fresh.child is not first


def _narrow_prober(tmp_path: Path, extra: str) -> tuple[Home, InstallRecord]:
    """The prober, asking for `extra` too but granted only users.read and livechat.read."""
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "gate", POLICY)
    rec = install(home, write_app(tmp_path / "apps", "prober", ["users.read", "livechat.read",
                                                               extra],
                                  ["livechat.room_started"], PROBE_SRC),
                  ["users.read", "livechat.read"])
    return home, rec


def _widen(home: Home, rec: InstallRecord, extra: str, *, counted: bool = False) -> None:
    """What an attacker with write access to host.db does: add `extra` to the install's
    grants (`counted`: and bump the change counter, as a real change does)."""
    conn = sqlite3.connect(home.host_db)
    conn.execute("UPDATE install_installs SET grants = ? WHERE install_id = ?",
                 (json.dumps(sorted(["livechat.read", "users.read", extra])), rec.install_id))
    if counted:
        conn.execute("UPDATE install_meta SET changes = changes + 1")
    conn.commit()
    conn.close()


def test_tampered_grant_is_detected_and_the_app_disabled(tmp_path: Path) -> None:
    home, rec = _narrow_prober(tmp_path, "roles.assign")
    _widen(home, rec, "roles.assign")
    with Host(home) as h:
        assert h.runners == {}  # never started
        after = h.installs.get(rec.install_id)
        assert after is not None and not after.enabled


def test_a_grant_widened_under_a_running_app_never_reaches_its_next_child(
        tmp_path: Path) -> None:
    """The row of a running install widened behind the host's back (no new generation): the
    child's token was minted before, so its calls stay narrow, but a restarted child's token
    was minted from the row as it stood — the widened grant reached the app (the watcher,
    off here, looks every 0.2 s, and before this fix never checked a running install's
    consent again). Now a start checks a record whose signed fields moved, and so does the
    watcher (below)."""
    import os
    import signal

    home, rec = _narrow_prober(tmp_path, "users.create")
    ask = [["users.create", {"username": "widened", "name": "W", "type": "bot",
                             "roles": ["bot"]}]]
    with Host(home, config=HostConfig(watch=False)) as h:
        runner = h.runners[rec.install_id]
        assert _run(h, ask)[0][0] == "PermissionDenied"
        _widen(home, rec, "users.create", counted=True)
        child = runner.child
        assert child is not None
        os.kill(child.pid, signal.SIGKILL)  # the app crashes before the watcher looks
        outcomes = []
        for _ in range(2):  # the first may meet the dead child; the next starts a new one
            try:
                outcomes.append(_run(h, ask)[0][0])
            except ChildDied as exc:
                outcomes.append(str(exc))
        assert "ok" not in outcomes and any("does not verify" in o for o in outcomes)
        with pytest.raises(NotFound):
            h.server.users_get_by_username(SYSTEM, "widened")
        after = h.installs.get(rec.install_id)
        assert after is not None and not after.enabled  # tampering disables the app
        assert any(r.get("code") == "consent_invalid" for r in _audit(h))


def test_a_running_apps_widened_row_is_caught_by_the_watcher(tmp_path: Path) -> None:
    home, rec = _narrow_prober(tmp_path, "users.create")
    with Host(home, config=HostConfig(watch=False)) as h:
        _widen(home, rec, "users.create")
        h.sync_installs()  # what the watcher does when the store changed
        assert rec.install_id not in h.runners
        after = h.installs.get(rec.install_id)
        assert after is not None and not after.enabled


def test_a_refusals_audit_code_is_the_code_policy_explain_gives(host: Host) -> None:
    """A reviewer reproduces a refusal from its audit record with `stockade policy explain`:
    both name the same code (it was `permission_denied` in the record for every refusal)."""
    import subprocess
    import sys

    asks = [{"username": "ext-u", "name": "U", "type": "user"},                     # no rule
            {"username": "ext-a", "name": "A", "type": "bot", "roles": ["admin"]}]  # guardrail
    res = _run(host, [["users.create", a] for a in asks])
    assert [r[0] for r in res] == ["PermissionDenied", "PermissionDenied"]
    denials = [r for r in _audit(host) if r.get("allowed") is False][-2:]
    explained = []
    for a in asks:
        p = subprocess.run(
            [sys.executable, "-c", "from host.cli.main import main; main()", "policy",
             "explain", "--policy",
             str(host.home.policies_dir), "--app", "prober", "--action", "users.create",
             "--args-json", json.dumps(a), "--json"],
            capture_output=True, text=True, timeout=60)
        explained.append(json.loads(p.stdout)["code"])
    assert explained == ["policy_denied", "guardrail"]
    assert [d["code"] for d in denials] == explained
