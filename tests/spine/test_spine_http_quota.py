"""An app out of its `http.request` quota, attacking through the real gate (a home, its
policy, ledger and install), the host's own `http.request` action (`HostServed`) and a
loopback server, with no child (calls enter at `Gate.handle` as a child's Call frame would):

- a request over its quota is refused before its host name is looked up: a lookup is a DNS
  query to whoever serves the name, so an app out of quota could still make the host send
  queries (a side channel, and a cost) by asking again and again;
- each redirect hop is charged its own unit before it is sent: one unit covered up to four
  requests of a chain (each hop was decided again but not charged), so a quota of N let 4N
  requests reach servers. A hop over the quota ends the chain with `quota_exceeded`, its
  lookup never made, and the units of the hops that went out are kept.
"""
from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from gatehelp import GateRig, build_rig, policy_rig
from httprig import OK, Loopback, get, http_policy, record_lookups, redirect_to

from host.clock import SystemClock
from host.errors import GateError
from host.keys.keyring import Keyring
from host.supervise.served import HostServed

APP = "crm"


def _redirecting(head: bytes) -> bytes:
    """Every request redirected to `/again`, but `/ok` answered 200 and `/to-dead-PORT`
    redirected to crm.localtest:PORT."""
    path = head.split(b" ", 2)[1].decode()
    if path.startswith("/to-dead-"):
        return redirect_to(f"http://crm.localtest:{path[9:]}/x")
    return OK if path == "/ok" else redirect_to("/again")


@pytest.fixture()
def server() -> Iterator[Loopback]:
    s = Loopback(_redirecting)
    yield s
    s.close()


def _rig(tmp_path: Any, limit: int, group_reads: bool = False,
         ) -> tuple[GateRig, list[str], HostServed]:
    """The gate of a home whose policy lets `crm` call crm.localtest under a quota of `limit`
    an hour, serving `http.request` as a host does; the names it looks up, in order.
    `group_reads`: its ledger group-commits as a serving host's does (a success's outcome
    waits for the next commit)."""
    policy = http_policy(APP, ["crm.localtest:*"], allow_private=["127.0.0.1"],
                         quota=("crm-http", limit))
    rig = policy_rig(tmp_path, APP, ["http"], {"http": policy})
    if group_reads:
        rig.close()
        rig = build_rig(rig.home, SystemClock(), APP, group_reads=True)
    asked = record_lookups(rig, lambda _name, _n: ["127.0.0.1"])
    served = HostServed(rig.home.host_store, 2.0, rig.server._server, rig.installs,
                        Keyring.open(rig.home.keys_dir))
    served.gate = rig.gate
    rig.gate.host_actions["http.request"] = served.actions()["http.request"]
    return rig, asked, served


def _records(rig: GateRig) -> list[dict[str, Any]]:
    if rig.ledger.batch is not None:
        rig.ledger.batch.flush()
    rows = rig.ledger.store.conn().execute("SELECT seq, body FROM audit ORDER BY seq")
    return [{"seq": int(r[0]), **json.loads(r[1])} for r in rows.fetchall()]


def _used(rig: GateRig, limit: int) -> int:
    key = next(c.key for c in rig.gate.policy.current().charges(
        APP, rig.session.install_id, "http.request"))
    return rig.ledger.quota_state(key, limit, 3600).used


def test_a_request_over_its_quota_looks_nothing_up(tmp_path: Any, server: Loopback) -> None:
    rig, asked, served = _rig(tmp_path, 1)
    try:
        url = f"http://crm.localtest:{server.port}/ok"
        assert get(rig, url)["status"] == 200
        assert asked == ["crm.localtest"]
        for _ in range(3):
            with pytest.raises(GateError) as refused:
                get(rig, url)
            assert refused.value.code == "quota_exceeded"
        # refused before the lookup (before: looked up on every refused call)
        assert asked == ["crm.localtest"], asked
        assert server.paths == ["/ok"]
        refusals = [r for r in _records(rig) if r["kind"] == "decision" and not r["allowed"]]
        assert [r["code"] for r in refusals] == ["quota_exceeded"] * 3  # still audited
        assert all("crm-http" in r["message"] for r in refusals)
    finally:
        served.httpout.close()


@pytest.mark.parametrize("group_reads", [False, True])
def test_each_redirect_hop_is_charged_before_it_is_sent(tmp_path: Any, server: Loopback,
                                                        group_reads: bool) -> None:
    rig, asked, served = _rig(tmp_path, 2, group_reads)
    try:
        with pytest.raises(GateError) as refused:
            get(rig, f"http://crm.localtest:{server.port}/first")
        # Two units: two requests reached the server (before: four, for one unit).
        assert server.paths == ["/first", "/again"], server.paths
        assert refused.value.code == "quota_exceeded"
        assert "redirect hop 3" in refused.value.message
        assert _used(rig, 2) == 2
        # The hop over the quota was never looked up either.
        assert asked == ["crm.localtest", "crm.localtest"], asked
        recs = _records(rig)
        hop = [r for r in recs if r["kind"] == "decision" and r["allowed"]
               and "redirect hop" in r.get("detail", "")]
        assert len(hop) == 1 and "2 hops charged" in hop[0]["detail"]
        assert hop[0]["quota"] and hop[0]["op_id"]
        outcomes = [r for r in recs if r["kind"] == "outcome"]
        # the hop answered (ok, kept); the call ended on the refused hop (kept: sent)
        assert [(o["ok"], o["refunded"]) for o in outcomes] == [(True, False), (False, False)]
        assert rig.ledger.pending_intents() == [] and rig.ledger.audit.verify().ok
        with pytest.raises(GateError) as again:
            get(rig, f"http://crm.localtest:{server.port}/ok")
        assert again.value.code == "quota_exceeded" and len(server.paths) == 2
    finally:
        served.httpout.close()


def test_a_hop_that_never_went_out_gets_its_unit_back(tmp_path: Any,
                                                      server: Loopback) -> None:
    """A hop refused before its first byte (nothing listens where it points) is refunded, as a
    request refused before sending is; the call keeps its own unit (its first hop went out)."""
    rig, _asked, served = _rig(tmp_path, 5)
    dead = socket.create_server(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there now: the hop's connect is refused
    try:
        with pytest.raises(GateError) as failed:
            get(rig, f"http://crm.localtest:{server.port}/to-dead-{dead_port}")
        assert failed.value.code == "invalid_argument" and "ConnectError" in failed.value.message
        assert server.paths == [f"/to-dead-{dead_port}"]
        assert _used(rig, 5) == 1
        outcomes = [r for r in _records(rig) if r["kind"] == "outcome"]
        # the hop: refused before sending, refunded; the call: failed after it went out, kept
        assert [(o["ok"], o["refunded"]) for o in outcomes] == [(False, True), (False, False)]
        assert rig.ledger.pending_intents() == [] and rig.ledger.audit.verify().ok
    finally:
        served.httpout.close()
