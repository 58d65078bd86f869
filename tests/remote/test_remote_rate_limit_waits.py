"""A workspace that rate-limits, as Rocket.Chat's REST limiter does (429, `X-RateLimit-Reset` in
epoch milliseconds, no `Retry-After`: the stand-in's `rate-limit` fault), against the real
adapter over loopback HTTP.

Before: the client read only `Retry-After`, so against Rocket.Chat it retried on its own jitter
(within ~0.6 s, three attempts, every one refused again by a limiter whose window had seconds to
run) and failed the call; a `Retry-After` past its 2 s cap was cut to 2 s and the route asked
again before it was told to; and a write that is sent once (`users.create`, a message) failed
at the first 429 — a refusal that applied nothing — with its outcome "unknown", so the gate
went to read the workspace back, and a message, which has nothing to read back, was recorded
as sent while the workspace never wrote it."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import httpx
import pytest
from rchelp import Standin, remote

from host.home import Home
from host.server.errors import Unavailable
from host.server.principals import Caller
from host.server.remote.client import RcClient
from host.server.remote.server import RemoteServer

_n = itertools.count()
_FOREVER = 1 << 20  # refusals the fault may make: its window, not a count, ends it


def _client(s: Standin, **kw: object) -> RcClient:
    return RcClient(s.url, s.user_id, s.token, **kw)  # type: ignore[arg-type]


def test_a_read_waits_for_the_limiters_reset_instead_of_hammering(clean: Standin) -> None:
    c = _client(clean)
    clean.fault("users.info", "rate-limit", 1.0, times=_FOREVER)
    got = c.call("GET", "users.info", query={"userId": clean.user_id}, idempotent=True)
    assert got["user"]["_id"] == clean.user_id
    assert c.attempts == 2  # one refused, one after the reset: none in between


def test_a_reset_past_the_calls_deadline_fails_at_once_typed(clean: Standin) -> None:
    waits: list[float] = []
    c = _client(clean, sleep=waits.append)
    clean.fault("users.info", "rate-limit", 30.0, times=_FOREVER)
    with pytest.raises(Unavailable) as err:
        c.call("GET", "users.info", query={"userId": clean.user_id}, idempotent=True)
    assert c.attempts == 1 and waits == []  # no early retry, no wait that cannot help
    assert err.value.code == "timeout" and "rate limiting" in err.value.message
    assert "nothing was applied" in err.value.message and not err.value.outcome_unknown


def test_a_retry_after_past_the_deadline_is_not_cut_short(clean: Standin) -> None:
    """A proxy's `Retry-After: 30`: asking again after 2 s (its old cap) is asking before told
    to; the call fails at once instead."""
    waits: list[float] = []
    c = _client(clean, sleep=waits.append)
    clean.fault("users.info", "status", 429, times=10, retry_after=30)
    with pytest.raises(Unavailable) as err:
        c.call("GET", "users.info", query={"userId": clean.user_id}, idempotent=True)
    assert c.attempts == 1 and waits == []
    assert "for 30.0 s more" in err.value.message


def _app(rs: RemoteServer) -> Caller:
    app_id = f"rl-app-{os.getpid()}-{next(_n)}"
    user = rs.create_app_user(app_id, "Rl")
    return Caller(app_id, f"in-{app_id}", user["id"])


def test_a_create_refused_by_the_limiter_is_sent_again_and_made_once(
        clean: Standin, tmp_path: Path) -> None:
    rs = remote(Home(tmp_path / "host").ensure(), clean)
    app = _app(rs)
    name = f"rl-{os.getpid()}-{next(_n)}"
    clean.fault("users.create", "rate-limit", 0.5, times=_FOREVER)
    user = rs.users_create(app, name, "R", "user", op_id="op-rl-create")
    assert user["username"] == name
    op = rs.owned.op("op-rl-create")
    assert op is not None and op[1] == "applied"
    assert clean.admin("GET", "users.info", params={"username": name})["user"]["_id"] \
        == user["id"]


def test_a_message_refused_by_the_limiter_is_sent_once_and_recorded_sent(
        clean: Standin, tmp_path: Path) -> None:
    rs = remote(Home(tmp_path / "host").ensure(), clean)
    app = _app(rs)
    agent = rs.users_create(app, f"rl-ag-{os.getpid()}-{next(_n)}", "Ag", "user",
                            op_id=f"op-{next(_n)}")
    rs.livechat_add_agent(app, agent["id"], op_id=f"op-{next(_n)}")
    rs.livechat_set_agent_status(app, agent["id"], "available", op_id=f"op-{next(_n)}")
    dep = clean.admin("POST", "livechat/department", json={
        "department": {"name": f"rl-dep-{os.getpid()}-{next(_n)}"},
        "agents": [{"agentId": agent["id"]}]})
    token = f"rl-visitor-{os.getpid()}-{next(_n)}-0123456789"
    httpx.post(f"{clean.url}/api/v1/livechat/visitor", json={"visitor": {"token": token}})
    rid = httpx.get(f"{clean.url}/api/v1/livechat/room", params={
        "token": token, "department": dep["department"]["_id"]}).json()["room"]["_id"]
    clean.fault("chat.sendMessage", "rate-limit", 0.5, times=_FOREVER)
    msg = rs.messages_send_as_user(app, rid, agent["id"], "hello once", op_id="op-rl-msg")
    assert msg["text"] == "hello once"
    op = rs.owned.op("op-rl-msg")
    assert op is not None and op[1] == "applied"
    history = clean.admin("GET", "channels.messages", params={"roomId": rid})["messages"]
    assert [m["msg"] for m in history].count("hello once") == 1


def test_through_the_gate_a_limit_past_the_deadline_is_typed_and_audited_unapplied(
        clean: Standin, tmp_path: Path) -> None:
    """The app's call: a typed `timeout` at once, saying how long the limiter asked for and
    that nothing was applied; its outcome audited as a failure with nothing left pending (no
    read-back of a create the limiter refused), and no user made."""
    import json
    import sqlite3

    from test_remote_gate import Rig

    from host.errors import GateError

    home = Home(tmp_path / "gate").ensure()
    rig = Rig(home, clean)
    name = f"rl-gate-{os.getpid()}-{next(_n)}"
    clean.fault("users.create", "rate-limit", 30.0, times=_FOREVER)
    with pytest.raises(GateError) as err:
        rig.create(name)
    assert err.value.code == "timeout", err.value
    assert "rate limiting (429) for" in err.value.message
    assert "nothing was applied" in err.value.message
    assert rig.ledger.pending_intents() == []
    with sqlite3.connect(home.host_db) as c:
        outcomes = [json.loads(b) for (b,) in c.execute("SELECT body FROM audit")
                    if '"kind":"outcome"' in b and '"users.create"' in b]
    # Its unit given back: the limiter refused every attempt before the route ran (before:
    # kept, so a rate-limiting workspace burned the app's quota for work never done).
    assert [(o["ok"], o["code"], o["refunded"]) for o in outcomes] == [(False, "timeout", True)]
    assert rig.used() == 0
    clean.clear_faults()
    assert not clean.admin("GET", "users.info", params={"username": name}).get("success")
