"""A bridge call whose arguments break the frame caps is a refusal like any other: the app sees
`invalid_argument`, the refusal is audited and it is charged to the install's refusal budget
(DESIGN rules 3 and 13).

The host checks a Call's args against the caps (`check_json_value`: string length, nesting,
items) before the gate decides anything. That check's refusal used to be only a reply: no audit
record and no budget charge, so an app that escaped its runtime (whose own check runs in the
child, where it is no rule) could be refused without bound, unseen and never stopped. The record
holds a digest of the Call frame's bytes as they came off the channel (bounded by the frame
cap), never a digest of the hostile args themselves, which may be too deep or too big to render.

Attacked with a real host and a real confined child whose app escaped (`escapehost`) and writes
its Call frames itself.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app
from audithelp import audit_bodies
from escapehost import PRELUDE, escape_apps

from host.home import Home
from host.ledger.refusals import REFUSAL_BUDGET
from host.runtime import Host, HostConfig
from host.supervise.child import ChildDied
from sandbox.wirecaps import MAX_ITEMS, MAX_NESTING, MAX_STRING, MAX_VALUES

HUGE = b'{"user_id": "' + b"x" * (MAX_STRING + 10) + b'"}'
DEEP = b'{"user_id": ' + b"[" * (MAX_NESTING + 4) + b"]" * (MAX_NESTING + 4) + b"}"
# Every list within the item cap and the whole well under the frame cap, but more values than
# any action takes: without the values cap, each cost the host ~15 ms of checking and digests
# before an action refused it (~500,000 values fit one frame: ~200 ms).
_ROW = b"[" + b",".join([b"0"] * MAX_ITEMS) + b"]"
WIDE = b'{"user_id": [' + b",".join([_ROW] * (MAX_VALUES // MAX_ITEMS + 2)) + b"]}"


def _frame(call_id: int, args: bytes) -> bytes:
    return b'{"t": "call", "id": %d, "action": "users.get", "args": %s}' % (call_id, args)


CALLER = PRELUDE + f'''
HUGE = {HUGE!r}
WIDE = {WIDE!r}
DEEP = {DEEP!r}


def frame(call_id, args):
    return b'{{"t": "call", "id": %d, "action": "users.get", "args": %s}}' % (call_id, args)


class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        chan = serving()["chan"]  # past the runtime's own check of the args
        codes = []
        for i in range(event["calls"]):
            chan.send_json(frame(i + 1, (HUGE, WIDE)[i] if i < 2 else DEEP))
            reply = chan.recv()
            codes.append("ok" if reply.ok else reply.error.code)
        return codes
'''




def _refusals(home: Home, install_id: str) -> list[dict[str, Any]]:
    return [b for b in audit_bodies(home) if b.get("kind") == "decision"
            and b.get("allowed") is False and b.get("install_id") == install_id]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Home, str]:
    escape_apps(monkeypatch, tmp_path)
    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(tmp_path / "apps", "caller", ["livechat.read"],
                                  ["livechat.room_started"], CALLER))
    return home, rec.install_id


def test_args_over_the_caps_are_refused_audited_and_digested_bounded(
        app: tuple[Home, str]) -> None:
    home, install_id = app
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        (runner,) = host.runners.values()
        codes = runner.submit("livechat.room_started", {"calls": 3}, 10.0).result(30)
        assert codes == ["invalid_argument"] * 3
        assert host.gate.stats["denied"] == 3
    huge, wide, deep = _refusals(home, install_id)
    for rec, frame, why in ((huge, _frame(1, HUGE), "string longer"),
                            (wide, _frame(2, WIDE), f"more than {MAX_VALUES} values"),
                            (deep, _frame(3, DEEP), "nesting deeper")):
        assert rec["code"] == "invalid_argument" and rec["action"] == "users.get", rec
        assert why in rec["message"], rec
        # the frame's own bytes, digested: bounded by the frame cap whatever the args hold
        assert hashlib.sha256(frame).hexdigest() in rec["detail"], rec
        assert rec.get("args_digest") is None, rec


def test_args_over_the_caps_are_charged_to_the_refusal_budget(app: tuple[Home, str]) -> None:
    home, install_id = app
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        (runner,) = host.runners.values()
        with pytest.raises(ChildDied):  # stopped mid-event, at its budget
            runner.submit("livechat.room_started", {"calls": REFUSAL_BUDGET + 5},
                          30.0).result(60)
        status = runner.status()
        assert status["refusal_stops"] == 1, status
        assert "refusal budget" in status["last_error"], status
    refusals = _refusals(home, install_id)
    summaries = [b for b in refusals if b.get("code") == "refusal_budget_exceeded"]
    assert len(refusals) == REFUSAL_BUDGET + 1, len(refusals)
    assert len(summaries) == 1 and "invalid_argument" in summaries[0]["message"], summaries
