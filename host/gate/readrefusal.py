"""The refusal of an allowed read that has no outcome record to say so (`record`).

A read no quota rates is admitted with its allow record alone (held for the group commit, or
appended at once), no intent and no outcome: when the store or the server then refuses it (a
missing key, a key or an association the store refuses, a room the server does not hold), the
log said "allowed" and nothing else, and no refusal budget was charged. A rated read's refusal
has its outcome record and refund (`Gate._admit_and_call`); this is the unrated one's. Past the
budget neither stops the app: the budget bounds what its refusals add to the audit log.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from host.gate.actor import acting_user
from host.ledger.audit import AuditRecord, digest_args
from host.ledger.ledger import REFUNDABLE_ERRORS, Ledger
from host.ledger.refusals import refusal_budget
from policies.policy import Policy
from policies.types import Decision

# The codes that refuse the app's own call. Guards the refusal budget: an outage or a host
# failure (`unavailable`, `timeout`, `internal`) is no refusal of what the app asked, and
# charging it would stop every reading app's child while the server is down.
READ_REFUSALS = REFUNDABLE_ERRORS | {"permission_denied"}


class _Who(Protocol):
    @property
    def app_id(self) -> str: ...

    @property
    def install_id(self) -> str: ...


def record(ledger: Ledger, who: _Who, action: str, args: Mapping[str, Any], code: str,
           message: str, decision: Decision, policy: Policy) -> None:
    """Audit the refusal of an allowed read that has no outcome record, as a refusal charged
    to the install's refusal budget (DESIGN rules 3, 9 and 13): a decision record that is not
    allowed, with the store's or the server's code, after the allow record of the same call
    (the held reads commit first in the transaction that appends it); past the budget, one
    summary record a window and nothing per refusal. Past the budget the app goes on, as after
    a rated read's refusal: a missing key is an ordinary answer. A code outside READ_REFUSALS
    records nothing."""
    if code not in READ_REFUSALS:
        return
    ledger.deny_within(AuditRecord(
        kind="decision", allowed=False, code=code, message=message[:500], rules=decision.rules,
        policy_rev=policy.revision, app_id=who.app_id, install_id=who.install_id,
        action=action, args_digest=digest_args(args), actor=acting_user(action, args),
        detail="refused by the store or the server after the policy allowed it",
    ), refusal_budget(who.install_id))
