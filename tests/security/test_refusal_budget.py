"""Refusals and logs are bounded (issue 19, DESIGN rule 13).

Refusals used to be audited one record each and never charged: an app looping on a refused
call wrote 13,363 audit records in 12 s (+23 MB). Now each install has a refusal budget
(`REFUSAL_BUDGET` per `REFUSAL_WINDOW_S`, a durable window like any quota): past it the app's
child is stopped, the operator is told (`app list`, the app's log) and the window gets one
summary record instead of one per refusal. Attacked with a real confined child that loops on a
refused call, and through the gate with a loop on a full quota.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from audithelp import audit_bodies
from gatehelp import QUOTA_LIMIT, build_rig, install_fuzz_app
from typer.testing import CliRunner

from host.cli.main import root
from host.clock import SystemClock
from host.errors import GateError, RefusalBudgetExceeded
from host.home import Home
from host.ledger.refusals import REFUSAL_BUDGET
from host.runtime import Host, HostConfig

LOOPS = 3 * REFUSAL_BUDGET

LOOPER = f'''
from stockade import App, PermissionDenied

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        refused = 0
        for i in range({LOOPS}):
            try:
                ctx.messages.send(room_id="r1", text="spam")
            except PermissionDenied:
                refused += 1
        return refused
'''




def test_a_child_looping_on_refusals_is_stopped_and_summarised(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "none", 'schema = 1\nname = "none"\n')
    folder = write_app(tmp_path / "apps", "looper", ["livechat.read", "messages.send"],
                       ["livechat.room_started"], LOOPER)
    rec = install(home, folder, ["livechat.read"])  # messages.send asked, never granted
    with Host(home) as host:
        runner = next(iter(host.runners.values()))
        with pytest.raises(Exception):
            runner.submit("livechat.room_started", {}, 30.0).result(60)
        assert runner.status()["refusal_stops"] == 1
        assert "refusal budget" in runner.status()["last_error"]
        host.publish_status()
        r = CliRunner().invoke(root, ["--home", str(home.root), "app", "list", "--json"])
        assert r.exit_code == 0, r.stderr
        (row,) = json.loads(r.stdout)
        assert row["running"]["refusal_stops"] == 1
    refusals = [b for b in audit_bodies(home) if b.get("allowed") is False
                and b.get("install_id") == rec.install_id]
    summaries = [b for b in refusals if b.get("code") == "refusal_budget_exceeded"]
    assert len(refusals) == REFUSAL_BUDGET + 1, len(refusals)
    assert len(summaries) == 1 and "refusals" in summaries[0]["message"]
    r = CliRunner().invoke(root, ["--home", str(home.root), "app", "logs", "looper"])
    assert r.exit_code == 0 and "refusal budget" in r.stdout + r.stderr


def test_a_loop_on_a_full_quota_is_charged_too(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    install_fuzz_app(home)
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        rig = build_rig(home, SystemClock())
        over: list[str] = []
        for i in range(QUOTA_LIMIT + LOOPS):
            try:
                host.gate.handle(rig.session, "users.create",
                                 {"username": f"bot-{i}", "name": "B", "type": "bot",
                                  "roles": ["bot"]})
            except RefusalBudgetExceeded as exc:
                over.append(exc.code)
            except GateError as exc:
                assert exc.code == "quota_exceeded"
        assert over and set(over) == {"quota_exceeded"}
    refused = [b for b in audit_bodies(home) if b.get("allowed") is False]
    assert len(refused) == REFUSAL_BUDGET + 1


# Refused after admission by the store itself (a key over the cap; a key never stored): each
# such refusal gave the call's units back for free, so the loop met neither the quota nor the
# refusal budget (the finding: 9,000 refused puts in 5 s, two audit records each).
STORE_LOOPER = '''
from stockade import App, InvalidArgument, NotFound

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        refused = 0
        for i in range(event["n"]):
            try:
                if event["how"] == "put":
                    ctx.store.put("k" * 300, "v")
                else:
                    ctx.store.get(f"never-stored-{i}")
            except (InvalidArgument, NotFound):
                refused += 1
        return refused
'''
STORE_LOOPS = 3000


@pytest.mark.parametrize("how", ["put", "get"])
def test_refusals_after_admission_are_free_only_within_the_budget(tmp_path: Path,
                                                                  how: str) -> None:
    """Under the shipped default policy (600 calls a minute): past the refusal budget a refused
    call keeps its units, so the quota ends the loop and the app is stopped as for any loop on
    refusals; the audit grows by a bounded amount, not two records per refused call."""
    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(tmp_path / "apps", "keeper", ["livechat.read", "persistence"],
                                  ["livechat.room_started"], STORE_LOOPER))
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        (runner,) = host.runners.values()
        with pytest.raises(Exception):  # the loop's child is stopped mid-event
            runner.submit("livechat.room_started", {"n": STORE_LOOPS, "how": how},
                          120.0).result(180)
        assert runner.status()["refusal_stops"] == 1, runner.status()
    mine = [b for b in audit_bodies(home) if b.get("install_id") == rec.install_id]
    refunded = [b for b in mine if b.get("kind") == "outcome" and b.get("refunded")]
    assert len(refunded) == REFUSAL_BUDGET, len(refunded)
    assert len(mine) < 2 * (600 + REFUSAL_BUDGET) + 10, len(mine)
