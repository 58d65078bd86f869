"""A read under a quota (the shipped baseline rates every bridge call) through a real host and a
confined child: its units and decision are durable before it is served; its success waits for
the group commit and lands with the next admission, intent and all; so does the refusal of a
read the server refuses, with its refund, before any later admission. What the records say is
what the two-commit path said."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host
from host.server.principals import SYSTEM

SRC = '''
from stockade import App, NotFound

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        out = []
        for uid in event["uids"]:
            try:
                out.append(ctx.users.get(uid)["id"])
            except NotFound:
                out.append("not found")
        return out
'''

POLICY = """
schema = 1
name = "reads"
[[rule]]
id = "reader-users"
effect = "permit"
apps = ["reader"]
actions = ["users.read"]
"""


def _records(h: Host, action: str) -> list[dict[str, Any]]:
    rows = h.ledger.store.conn().execute("SELECT seq, body FROM audit ORDER BY seq").fetchall()
    return [{"seq": int(r[0]), **json.loads(r[1])} for r in rows if f'"{action}"' in r[1]]


def _intents(h: Host) -> int:
    return int(h.ledger.store.conn().execute("SELECT count(*) FROM audit_intents").fetchone()[0])


def _units(h: Host, decision: dict[str, Any]) -> int:
    (quota,) = decision["quota"]  # the baseline's rate: the one quota a read is charged
    return h.ledger.quota_state(quota["key"], quota["limit"], quota["window_s"]).used


def test_a_rated_read_is_admitted_durably_and_its_success_group_committed(
        tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()  # the shipped baseline: default-bridge-rate on "*"
    write_policy(home, "reads", POLICY)
    install(home, write_app(tmp_path / "apps", "reader", ["users.read", "livechat.read"],
                            ["livechat.room_started"], SRC))
    with Host(home) as h:
        assert h.ledger.batch is not None
        uid = h.server.users_create(SYSTEM, username="target", name="T", type="user")["id"]
        runner = next(iter(h.runners.values()))
        held: list[int] = []
        refusals: list[int] = []
        hold, hold_refusal = h.ledger.hold_outcome, h.ledger.hold_refusal

        def spy(seq: int, *args: Any, **kwargs: Any) -> None:
            held.append(seq)
            hold(seq, *args, **kwargs)

        def spy_refusal(seq: int, *args: Any, **kwargs: Any) -> None:
            refusals.append(seq)
            hold_refusal(seq, *args, **kwargs)
        h.ledger.hold_outcome = spy  # type: ignore[method-assign]
        h.ledger.hold_refusal = spy_refusal  # type: ignore[method-assign]
        assert runner.submit("livechat.room_started", {"uids": [uid]}, 10.0).result(30) == [uid]
        (decision, *_) = _records(h, "users.get")
        # Admitted like a call with effects (op_id, quota units, intent), durably before it
        # was served; its success went to the group commit.
        assert decision["kind"] == "decision" and decision["allowed"] is True
        assert decision["op_id"].startswith("op_") and decision["quota"]
        assert held == [decision["seq"]]
        # The missing user's read is refused by the server; its refusal and refund wait too.
        assert runner.submit("livechat.room_started", {"uids": [uid, "nobody"]},
                             10.0).result(30) == [uid, "not found"]
        h.ledger.batch.flush()
        recs = _records(h, "users.get")
        kinds = [(r["kind"], r.get("code")) for r in recs]
        assert kinds == [("decision", "allow"), ("outcome", "ok"), ("decision", "allow"),
                         ("outcome", "ok"), ("decision", "allow"), ("outcome", "not_found")]
        for decision, outcome in zip(recs[::2], recs[1::2], strict=True):
            assert outcome["ref_seq"] == decision["seq"] and outcome["op_id"] == decision["op_id"]
            assert outcome["app_id"] == "reader" and outcome["install_id"] == decision[
                "install_id"] and outcome["action"] == "users.get"
        assert recs[1]["seq"] < recs[2]["seq"]  # before the next read's decision, as rule 9 asks
        assert [r["refunded"] for r in recs[1::2]] == [False, False, True]
        assert held == [recs[0]["seq"], recs[2]["seq"]]  # the successes
        assert refusals == [recs[4]["seq"]]
        assert _intents(h) == 0 and _units(h, recs[0]) == 2  # two served, one refunded
        assert h.ledger.audit.verify().ok
