"""An install's refusal budget (DESIGN rule 13): what every refusal of its calls is charged to.

A refusal decided before admission (a policy denial, args over the caps) is recorded within the
budget and summarised past it (`Ledger.deny_within`). A refusal after admission (the store or
the server refused the call: a missing key, a value too large, a conflict) gives the call's
quota units back only while the budget has room (`refund_within`); past it the call keeps them,
as a success would, so the quota bounds an app looping on such refusals (before, each was
refunded for free: 9,000 refused puts in 5 s, two audit records each, against a quota of 600 a
minute).
"""
from __future__ import annotations

from host.ledger.quota import Charge, Reservation, refund_in, reserve_in
from host.store import Conn
from policies import quota as quota_rules

# An install may be refused at most REFUSAL_BUDGET times in any REFUSAL_WINDOW_S seconds (a
# durable sliding window, shared by every host on the home, like any quota). Each refusal within
# it is one audit record. Past it the supervisor stops the app's child and the window gets one
# summary record instead of one per refusal. It guards the audit chain and the disk: three
# events of an app looping on refused calls once wrote 13,363 records (+23 MB) in 12 s. A
# well-behaved app is refused a few times an hour, far below this.
# (The numbers live in `policies.quota`, shared with the author harness.)
REFUSAL_BUDGET = quota_rules.REFUSAL_BUDGET
REFUSAL_WINDOW_S = quota_rules.REFUSAL_WINDOW_S


def refusal_budget(install_id: str) -> Charge:
    """The refusal budget's charge for one install (see REFUSAL_BUDGET)."""
    return Charge(f"refusals:{install_id}", REFUSAL_BUDGET, REFUSAL_WINDOW_S, "install")


def refund_within(c: Conn, reservation: Reservation, install_id: str | None,
                  now: float) -> bool:
    """Inside the caller's transaction: give `reservation`'s units back if `install_id`'s
    refusal budget takes one more refusal (then charged to it); True when refunded."""
    if install_id is not None:
        taken, _states = reserve_in(c, [refusal_budget(install_id)], "refusal", now)
        if not isinstance(taken, Reservation):
            return False
    refund_in(c, reservation)
    return True
