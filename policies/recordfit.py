"""STK039: no call may be charged more quotas than its audit record holds.

Every call the gate admits is an audit record holding the state of each quota it charged, and
a record holds at most `MAX_RECORD_QUOTAS` (`host/ledger/records.py` `MAX_QUOTAS`; a test holds
the two equal). A set with 17 quotas on one action made every such call raise out of the gate
with nothing recorded. Unlike the rules a decision names (`policies.types.MAX_DECISION_RULES`:
the first by id), no charge may be left out, so the loader refuses such a set (an error), as it
refuses quotas past what the quota store keeps (STK019).

The quotas one call is charged: those on its action and on `*`, and those of the actions one
call may be decided as beside it (`COMPANIONS`: `rest.call`, whose mapped route is charged as
its action too, and the actions a role amounts to, `ROLE_AMOUNTS_TO`). Counted exactly, per app
(a quota for every app counts for each), in time linear in the quotas' app entries.
"""
from __future__ import annotations

from collections.abc import Sequence

from policies.findings import Finding, finding
from policies.source import SourceFile
from policies.vocabulary import ROLE_AMOUNTS_TO

# Quota states one audit record holds (host/ledger/records.py MAX_QUOTAS). Guards: a call the
# gate cannot record (DESIGN rules 3 and 9).
MAX_RECORD_QUOTAS = 16
# Actions one call may be charged as beside its own (see the module docstring).
COMPANIONS = frozenset({"rest.call", *(a for pair in ROLE_AMOUNTS_TO.values() for a in pair)})

Place = tuple[SourceFile, tuple[str | int, ...]]


def record_fit_findings(sources: Sequence[SourceFile]) -> list[Finding]:
    """STK039 for each app (or every app, "*") one of whose calls could be charged more quotas
    than a record holds (see the module docstring)."""
    common: dict[str, int] = {}  # per app: quotas every call of the app may meet
    own: dict[str, dict[str, int]] = {}  # per app and action: quotas of that action alone
    place: dict[str, Place] = {}
    for s in sources:
        for i, q in enumerate(s.model.quota if s.model is not None else ()):
            for app in {"*"} if "*" in q.apps else set(q.apps):
                place.setdefault(app, (s, ("quota", i, "apps")))
                if q.action == "*" or q.action in COMPANIONS:
                    common[app] = common.get(app, 0) + 1
                else:
                    mine = own.setdefault(app, {})
                    mine[q.action] = mine.get(q.action, 0) + 1
    out: list[Finding] = []
    for app in sorted(place):
        counts = dict(own.get("*", {}))
        if app != "*":
            for a, n in own.get(app, {}).items():
                counts[a] = counts.get(a, 0) + n
        action, most = max(counts.items(), key=lambda kv: (kv[1], kv[0]), default=("*", 0))
        n = common.get(app, 0) + (common.get("*", 0) if app != "*" else 0) + most
        if n > MAX_RECORD_QUOTAS:
            src, path = place[app]
            who = "any app" if app == "*" else f"app {app!r}"
            out.append(finding("STK039", src.name, src.locator.pos(path),
                               f"one {action} call of {who} can be charged {n} quotas, more "
                               f"than the {MAX_RECORD_QUOTAS} its audit record holds: the host "
                               "could not record it (merge the quotas)"))
    return out
