"""What the console's read-only pages show: quotas and seats over time, the policy, the keys.

Each function reads the home's stores read-only and returns plain data for a template; none
changes anything. The quota chart is server-rendered SVG with presentation attributes only (the
console's CSP allows no inline style and no script).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from host.apps.installs import InstallRecord
from host.apps.publisher import TrustStore
from host.home import Home
from host.keys.keyring import Keyring
from host.store import reading, table_exists
from policies.findings import FAILING
from policies.loader import load
from policies.policy import Policy

# Bars per chart: the window is cut into this many equal slices. Guards: page size.
BUCKETS = 12
CHART_W, CHART_H = 240, 48


@dataclass
class QuotaView:
    app_id: str
    quota_id: str
    action: str
    key: str
    limit: int
    window_s: int
    used: int
    next_free_in_s: float | None
    svg_bars: list[dict[str, float]]  # x, y, width, height of each bar


def _bars(stamps: list[float], window_s: int, limit: int, now: float) -> list[dict[str, float]]:
    step = window_s / BUCKETS
    counts = [0] * BUCKETS
    for ts in stamps:
        age = now - ts
        if 0 <= age < window_s:
            counts[BUCKETS - 1 - int(age // step)] += 1
    width = CHART_W / BUCKETS
    out = []
    for i, n in enumerate(counts):
        h = 0.0 if limit <= 0 else min(1.0, n / limit) * CHART_H
        out.append({"x": i * width + 1, "y": CHART_H - h, "width": width - 2, "height": h,
                    "count": float(n)})
    return out


def quotas(home: Home, policy: Policy | None, installs: list[InstallRecord],
           now: float | None = None) -> list[QuotaView]:
    """Every quota the policy puts on each installed app: units in the window now, when the
    next frees, and the units' times as bars over the window."""
    if policy is None or not home.has_host_store():
        return []
    at = time.time() if now is None else now
    out: list[QuotaView] = []
    with reading(home.host_store) as conn:
        charged = table_exists(conn, "quota_slots")  # no quota was ever charged otherwise
        for rec in installs:
            for q in policy.quotas:
                if not (q.any_app or rec.app_id in q.apps):
                    continue
                key = q.key(rec.app_id, rec.install_id)  # the engine's own key
                stamps = [float(r[0]) for r in conn.execute(
                    "SELECT ts FROM quota_slots WHERE key = ?", (key,))] if charged else []
                live = sorted(ts for ts in stamps if at - ts < q.window_s)
                free_in = None if len(live) < q.limit else live[0] + q.window_s - at
                out.append(QuotaView(rec.app_id, q.id, q.action, key, q.limit, q.window_s,
                                     len(live), free_in, _bars(live, q.window_s, q.limit, at)))
    return out


def policy_view(home: Home) -> dict[str, Any]:
    """The revision the home's policy folder loads as (what a serving host enforces once it has
    polled it), its files and findings."""
    res = load([home.policies_dir])
    return {"revision": res.policy.revision if res.policy else None,
            "files": sorted(p.name for p in home.policies_dir.glob("*.toml")),
            "findings": [f.to_json() for f in res.findings],
            "failing": any(f.severity in FAILING for f in res.findings),
            "policy": res.policy}


def keys_view(home: Home) -> dict[str, Any]:
    """Host signing keys (and how many installs' consents each signed), trusted publishers."""
    keys: list[dict[str, Any]] = []
    if Keyring.exists(home.keys_dir):
        ring = Keyring.open(home.keys_dir)
        used: dict[str, int] = {}
        if home.has_host_store():
            with reading(home.host_store) as conn:
                if table_exists(conn, "consent_records"):
                    used = {str(k): int(n) for k, n in conn.execute(
                        "SELECT c.kid, count(*) FROM consent_records c JOIN install_installs i"
                        " ON i.consent_id = c.consent_id GROUP BY c.kid")}
        keys = [{"kid": kid, "current": kid == ring.current, "retired": kid in ring.retired,
                 "installs": used.get(kid, 0)} for kid in sorted(ring.public_keys())]
    trusted = [{"name": t.name, "kid": t.kid, "fingerprint": t.fingerprint}
               for t in TrustStore(home.trust_dir).list()]
    return {"host_keys": keys, "trusted": trusted}
