"""A store failure that escaped a call's decision or admission, as the gate's own error.

The server call's failures are mapped where it is made (`Gate._admit_and_call`); the steps
before it (the install record's read, the admission's transaction, the one-transaction path's
BEGIN or COMMIT) raised the store's own exception (`PgError`, `StoreError`, `sqlite3.Error`)
out of `Gate.handle`: the app got the child's generic answer and the log held no record of the
call. Now it is `GateError("internal")`, audited as a decision that is not allowed, with its
own code, when the store can still take the record.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from host.errors import GateError
from host.gate.actor import acting_user
from host.ledger.audit import AuditRecord, digest_args
from host.ledger.ledger import Ledger
from host.store.base import STORE_FAILURES
from host.store.diskfull import store_trouble

log = logging.getLogger("stockade.gate")

# (`store_trouble` too: the gate words its other store failures with it.)
__all__ = ["STORE_FAILURES", "store_failed", "store_trouble"]

# The code the record holds (the app sees `internal`): the host's store failed, not the app's
# call. Charged to no refusal budget: an outage is no refusal of what the app asked, and
# charging it would stop every calling app's child while the store is down (`readrefusal`).
STORE_FAILED = "store_failed"


class _Who(Protocol):
    @property
    def app_id(self) -> str: ...

    @property
    def install_id(self) -> str: ...


def store_failed(ledger: Ledger, who: _Who, action: str, args: Mapping[str, Any],
                 exc: BaseException) -> GateError:
    """Audit (when the store takes it) and log a call failed by its store; the app's error.

    The message does not say whether anything applied: a failed COMMIT cannot tell, and the
    call's intent, if one was admitted, is settled by the outcome machinery
    (`host.ledger.unsettled`), never here."""
    message = (f"{action} failed inside the host: the host's store failed while deciding or "
               f"recording this call{store_trouble(exc) or '; try again'}")
    log.warning("%s: the store failed in its admission (%s)", action, type(exc).__name__,
                exc_info=exc)
    try:
        ledger.append(AuditRecord(
            kind="decision", allowed=False, code=STORE_FAILED, message=message[:500],
            app_id=who.app_id, install_id=who.install_id, action=action[:64],
            args_digest=digest_args(args), actor=acting_user(action, args)))
    except Exception:  # the store that failed may refuse the record too
        log.warning("%s: its store failure could not be audited either", action,
                    exc_info=True)
    return GateError("internal", message)
