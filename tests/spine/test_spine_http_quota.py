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
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from gatehelp import GateRig, build_rig, policy_rig

from host.clock import SystemClock
from host.errors import GateError
from host.keys.keyring import Keyring
from host.supervise.served import HostServed

APP = "crm"
POLICY = '''
schema = 1
name = "http"
[[rule]]
id = "crm-api"
effect = "permit"
apps = ["crm"]
actions = ["http.request"]
[rule.when]
domains = ["crm.localtest:*"]
allow_private = ["127.0.0.1"]
[[quota]]
id = "crm-http"
apps = ["crm"]
action = "http.request"
limit = {limit}
window = "1h"
'''


class Redirecting:
    """A loopback server answering every request with a redirect to itself (`/again`), or
    with 200 on `/ok`; it counts the requests that reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(2.0)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    path = data.split(b" ", 2)[1].decode()
                    self.paths.append(path)
                    if path.startswith("/to-dead-"):
                        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://crm.localtest:"
                                     + path[9:].encode() + b"/x\r\n"
                                     b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                    elif path == "/ok":
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                     b"Connection: close\r\n\r\nok")
                    else:
                        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /again\r\n"
                                     b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def server() -> Iterator[Redirecting]:
    s = Redirecting()
    yield s
    s.close()


def _rig(tmp_path: Any, limit: int, group_reads: bool = False,
         ) -> tuple[GateRig, list[str], HostServed]:
    """The gate of a home whose policy lets `crm` call crm.localtest under a quota of `limit`
    an hour, serving `http.request` as a host does; the names it looks up, in order.
    `group_reads`: its ledger group-commits as a serving host's does (a success's outcome
    waits for the next commit)."""
    rig = policy_rig(tmp_path, APP, ["http"], {"http": POLICY.format(limit=limit)})
    if group_reads:
        rig.close()
        rig = build_rig(rig.home, SystemClock(), APP, group_reads=True)
    asked: list[str] = []

    def resolve(name: str) -> list[str]:
        asked.append(name)
        return ["127.0.0.1"]
    rig.gate.resolve = resolve
    served = HostServed(rig.home.host_store, 2.0, rig.server._server, rig.installs,
                        Keyring.open(rig.home.keys_dir))
    served.gate = rig.gate
    rig.gate.host_actions["http.request"] = served.actions()["http.request"]
    return rig, asked, served


def _get(rig: GateRig, url: str) -> Any:
    return rig.gate.handle(rig.session, "http.request", {"method": "GET", "url": url})


def _records(rig: GateRig) -> list[dict[str, Any]]:
    if rig.ledger.batch is not None:
        rig.ledger.batch.flush()
    rows = rig.ledger.store.conn().execute("SELECT seq, body FROM audit ORDER BY seq")
    return [{"seq": int(r[0]), **json.loads(r[1])} for r in rows.fetchall()]


def _used(rig: GateRig, limit: int) -> int:
    key = next(c.key for c in rig.gate.policy.current().charges(
        APP, rig.session.install_id, "http.request"))
    return rig.ledger.quota_state(key, limit, 3600).used


def test_a_request_over_its_quota_looks_nothing_up(tmp_path: Any, server: Redirecting) -> None:
    rig, asked, served = _rig(tmp_path, 1)
    try:
        url = f"http://crm.localtest:{server.port}/ok"
        assert _get(rig, url)["status"] == 200
        assert asked == ["crm.localtest"]
        for _ in range(3):
            with pytest.raises(GateError) as refused:
                _get(rig, url)
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
def test_each_redirect_hop_is_charged_before_it_is_sent(tmp_path: Any, server: Redirecting,
                                                        group_reads: bool) -> None:
    rig, asked, served = _rig(tmp_path, 2, group_reads)
    try:
        with pytest.raises(GateError) as refused:
            _get(rig, f"http://crm.localtest:{server.port}/first")
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
            _get(rig, f"http://crm.localtest:{server.port}/ok")
        assert again.value.code == "quota_exceeded" and len(server.paths) == 2
    finally:
        served.httpout.close()


def test_a_hop_that_never_went_out_gets_its_unit_back(tmp_path: Any,
                                                      server: Redirecting) -> None:
    """A hop refused before its first byte (nothing listens where it points) is refunded, as a
    request refused before sending is; the call keeps its own unit (its first hop went out)."""
    rig, _asked, served = _rig(tmp_path, 5)
    dead = socket.create_server(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there now: the hop's connect is refused
    try:
        with pytest.raises(GateError) as failed:
            _get(rig, f"http://crm.localtest:{server.port}/to-dead-{dead_port}")
        assert failed.value.code == "invalid_argument" and "ConnectError" in failed.value.message
        assert server.paths == [f"/to-dead-{dead_port}"]
        assert _used(rig, 5) == 1
        outcomes = [r for r in _records(rig) if r["kind"] == "outcome"]
        # the hop: refused before sending, refunded; the call: failed after it went out, kept
        assert [(o["ok"], o["refunded"]) for o in outcomes] == [(False, True), (False, False)]
        assert rig.ledger.pending_intents() == [] and rig.ledger.audit.verify().ok
    finally:
        served.httpout.close()
