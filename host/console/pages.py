"""What the console's read-only pages show: quotas and seats over time, the policy, the keys.

Each function reads the home's stores read-only and returns plain data for a template; none
changes anything. The quota chart is server-rendered SVG with presentation attributes only (the
console's CSP allows no inline style and no script). A quota's figures are the ledger's own
(`state_in`, what `stockade policy explain` prints). What cannot be read now (a policy folder
that does not load, a store another process holds, a keyring that does not read) is said as
"cannot tell" with its reason, never as nothing, zero or a failed page: the page contexts run
off the console's event loop (a store's busy wait would stall every request of the front).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from host.apps.installs import InstallRecord, InstallStore
from host.apps.lifecycle_seams import SERVER_UNASKABLE
from host.apps.publisher import TrustStore
from host.console.faults import store_busy
from host.home import Home
from host.inert import visible
from host.keys.keyring import KeyError_, Keyring
from host.ledger.quota import state_in
from host.store import STORE_FAILURES, open_store, reading, table_exists
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
    next_free_at: float | None  # the ledger's: when a unit frees (None: one is free now)
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
    """Every quota the policy puts on each installed app: units in the window now and when the
    next frees, as the ledger counts them (`state_in`: its high-water time, and a limit lowered
    below the units its ring holds frees a unit only when the limit-th newest does), and the
    units' times as bars over the window, all at the ledger's now (`_ledger_now`). Raises
    STORE_FAILURES when the store cannot be read."""
    if policy is None or not home.has_host_store():
        return []
    out: list[QuotaView] = []
    with _ledger_now(home, now) as (conn, at):
        charged = table_exists(conn, "quota_keys")  # no quota was ever charged otherwise
        for rec in installs:
            for q in policy.quotas:
                if not (q.any_app or rec.app_id in q.apps):
                    continue
                key = q.key(rec.app_id, rec.install_id)  # the engine's own key
                stamps = [float(r[0]) for r in conn.execute(
                    "SELECT ts FROM quota_slots WHERE key = ?", (key,))] if charged else []
                live = sorted(ts for ts in stamps if at - ts < q.window_s)
                used, free_at = len(live), None
                if charged:
                    st = state_in(conn, key, q.limit, float(q.window_s), at)
                    used, free_at = st.used, st.next_free_at
                out.append(QuotaView(rec.app_id, q.id, q.action, key, q.limit, q.window_s,
                                     used, free_at, None if free_at is None else free_at - at,
                                     _bars(live, q.window_s, q.limit, at)))
    return out


@contextmanager
def _ledger_now(home: Home, now: float | None) -> Iterator[tuple[Any, float]]:
    """A connection to read the quotas on and the time their windows are read at, as the
    ledger's `quota_state` takes it (`Ledger._now_in`): on a shared PostgreSQL store the
    database's clock, read in a transaction's BEGIN round trip (`Store.clock_in`), since the
    hosts charging the windows time them by it and this machine's clock may disagree; on the
    home's SQLite store (one machine's clock) `now`, or this machine's time."""
    store = open_store(home.host_store, readonly=True)
    try:
        if store.dialect == "postgresql":
            with store.transaction() as c:
                at = store.clock_in(c)
                yield c, at if at is not None else time.time() if now is None else now
        else:
            yield store.conn(), time.time() if now is None else now
    finally:
        store.close()


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
    """Host signing keys (and how many installs' consents each signed), trusted publishers.
    `keys_why` / `used_why`: why the keys, or the counts of what each signed, cannot be told
    (each count is then None, never 0)."""
    keys: list[dict[str, Any]] = []
    keys_why = used_why = ""
    try:
        ring = Keyring.open(home.keys_dir) if Keyring.exists(home.keys_dir) else None
    except (KeyError_, OSError) as exc:
        ring, keys_why = None, f"the host's keyring does not read: {_why(exc)}"
    if ring is not None:
        used: dict[str, int] | None = {}
        if home.has_host_store():
            try:
                with reading(home.host_store) as conn:
                    if table_exists(conn, "consent_records"):
                        used = {str(k): int(n) for k, n in conn.execute(
                            "SELECT c.kid, count(*) FROM consent_records c JOIN "
                            "install_installs i ON i.consent_id = c.consent_id GROUP BY c.kid")}
            except STORE_FAILURES as exc:
                used, used_why = None, _store_why(exc)
        keys = [{"kid": kid, "current": kid == ring.current, "retired": kid in ring.retired,
                 "installs": None if used is None else used.get(kid, 0)}
                for kid in sorted(ring.public_keys())]
    trusted = [{"name": t.name, "kid": t.kid, "fingerprint": t.fingerprint}
               for t in TrustStore(home.trust_dir).list()]
    return {"host_keys": keys, "trusted": trusted, "keys_why": keys_why, "used_why": used_why}


def _why(exc: BaseException) -> str:
    """An exception's words for a "cannot tell (why)": one line, inert, cut."""
    return visible(str(exc) or type(exc).__name__)


def _store_why(exc: BaseException) -> str:
    return f"the host's store cannot be read now: {_why(exc)}"


def quota_context(home: Home, seats: Callable[[], int],
                  now: float | None = None) -> dict[str, Any]:
    """What the quotas page shows. `quotas_why` / `ceiling_why` / `seats_why`: why that part
    cannot be told now. A folder that does not load is no "no quota": the serving host keeps
    enforcing its previous revision, whose quotas this process cannot read."""
    at = time.time() if now is None else now
    ctx: dict[str, Any] = {"quotas": [], "quotas_why": "", "ceiling": None, "ceiling_why": "",
                           "seats": None, "seats_why": ""}
    try:
        policy = policy_view(home)["policy"]
    except OSError as exc:  # the folder itself unreadable
        policy, folder_why = None, f"the policy folder cannot be read: {_why(exc)}"
    else:
        folder_why = ("the policy folder does not load (its findings are on the Policy "
                      "page); a serving host keeps enforcing its previous revision")
    if policy is None:
        ctx["quotas_why"] = ctx["ceiling_why"] = folder_why
    else:
        ctx["ceiling"] = policy.seat_ceiling
        # The store held by another process: said within STORE_WAIT_S, not after the store's
        # own 10 s wait for the lock the install store takes to open.
        busy = store_busy(home)
        try:
            installs: list[InstallRecord] = []
            if busy is not None:
                ctx["quotas_why"] = busy
            elif home.has_host_store():  # a page creates no store
                with InstallStore(home.host_store) as store:
                    installs = store.list()
            ctx["quotas"] = quotas(home, policy, installs, at)
        except STORE_FAILURES as exc:
            ctx["quotas_why"] = _store_why(exc)
    try:
        ctx["seats"] = seats()
    except (*STORE_FAILURES, *SERVER_UNASKABLE) as exc:
        ctx["seats_why"] = f"the chat server cannot be asked: {_why(exc)}"
    return ctx


class EnforcedUnknown(Exception):
    """The serving host did not say which policy revision it decides with (it did not answer
    the front in time, or its link is gone): not the same as no host running apps."""


def policy_context(home: Home, enforced: Callable[[], str | None]) -> dict[str, Any]:
    """What the policy and keys page shows (`enforced`: the serving host's revision, None when
    no host runs apps here; it raises EnforcedUnknown when a host did not say)."""
    try:
        revision, why = enforced(), ""
    except EnforcedUnknown as exc:
        revision, why = None, visible(str(exc))
    return {"enforced": revision, "enforced_why": why, "view": policy_view(home),
            "keys": keys_view(home)}
