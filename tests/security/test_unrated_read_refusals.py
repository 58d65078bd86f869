"""A read no quota rates, refused after the policy allowed it (a missing key, a key or an
association the store refuses, a room the server does not hold), is audited as refused and
charged to the install's refusal budget, as every other refusal is (DESIGN rules 3, 9, 13).

Such a read has no intent and no outcome record: its allow record waits for the group commit.
Before, its refusal left only that allow record (the log said the call was allowed and nothing
else), and charged no refusal budget, so an app under a policy with no call-rate quota looped
on refused reads for ever, each one recorded as allowed. A real host and a confined child."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from apphelp import install, write_app, write_policy
from audithelp import audit_bodies

from host.home import Home
from host.ledger.refusals import REFUSAL_BUDGET
from host.runtime import Host

# No quota at all: the shipped baseline's call-rate quota is not loaded.
POLICY = '''
schema = 1
name = "unrated"
[[rule]]
id = "reads"
effect = "permit"
apps = ["reader"]
actions = ["persistence", "livechat.get_room"]
'''

SRC = '''
from stockade import App, InvalidArgument, NotFound

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        out = []
        ctx.store.put("there", 1)
        for step in event["steps"]:
            try:
                if step == "get":
                    out.append(ctx.store.get("there"))
                elif step == "missing":
                    out.append(ctx.store.get("nope"))
                elif step == "long key":
                    out.append(ctx.store.get("k" * 300))
                elif step == "bad find":
                    out.append(ctx.store.find({"kind": "bogus", "id": "x"}))
                elif step == "no room":
                    out.append(ctx.livechat.get_room("no-such-room"))
            except NotFound:
                out.append("not_found")
            except InvalidArgument:
                out.append("invalid_argument")
        return out
'''


def _host(tmp_path: Path) -> tuple[Home, Host]:
    home = Home(tmp_path / "home").ensure()
    home.default_policy.unlink(missing_ok=True)
    write_policy(home, "unrated", POLICY)
    install(home, write_app(tmp_path / "apps", "reader", ["livechat.read", "persistence"],
                            ["livechat.room_started"], SRC))
    return home, Host(home)


def _reads(home: Home) -> list[dict[str, Any]]:
    return [b for b in audit_bodies(home) if b.get("kind") == "decision"
            and b.get("action") in ("persistence.get", "persistence.find", "livechat.get_room")]


def test_a_refused_unrated_read_is_audited_as_refused(tmp_path: Path) -> None:
    home, host = _host(tmp_path)
    steps = ["get", "missing", "long key", "bad find", "no room"]
    with host:
        runner = next(iter(host.runners.values()))
        assert runner.submit("livechat.room_started", {"steps": steps}, 10.0).result(30) == [
            1, "not_found", "invalid_argument", "invalid_argument", "not_found"]
    reads = _reads(home)
    assert [(r["action"], r["allowed"], r["code"]) for r in reads] == [
        ("persistence.get", True, "allow"),
        ("persistence.get", True, "allow"), ("persistence.get", False, "not_found"),
        ("persistence.get", True, "allow"), ("persistence.get", False, "invalid_argument"),
        ("persistence.find", True, "allow"), ("persistence.find", False, "invalid_argument"),
        ("livechat.get_room", True, "allow"), ("livechat.get_room", False, "not_found"),
    ], reads
    for allow, refusal in zip(reads[1::2], reads[2::2], strict=True):
        assert refusal["args_digest"] == allow["args_digest"]  # the same call
        assert refusal["rules"] == allow["rules"] == ["reads"]


def test_a_loop_on_refused_unrated_reads_meets_the_refusal_budget(tmp_path: Path) -> None:
    """Charged to the budget, and past it summarised once, not recorded per refusal; the app
    goes on, as it does past the budget with a rated read (a missing key is an ordinary
    answer: a cache's misses must not stop an app)."""
    home, host = _host(tmp_path)
    with host:
        runner = next(iter(host.runners.values()))
        out = runner.submit("livechat.room_started", {"steps": ["missing"] * (3 * REFUSAL_BUDGET)},
                            30.0).result(60)
        assert out == ["not_found"] * (3 * REFUSAL_BUDGET)
        assert runner.status()["refusal_stops"] == 0
    refused = [b for b in audit_bodies(home) if b.get("allowed") is False]
    assert len(refused) == REFUSAL_BUDGET + 1, len(refused)
    assert refused[-1]["code"] == "refusal_budget_exceeded"
