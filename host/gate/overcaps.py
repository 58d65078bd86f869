"""A bridge call refused before the gate decides anything: its arguments break the frame caps.

The host checks a Call's arguments against the caps (`sandbox.wirecaps.check_json_value`: depth,
string length, items) as they come off the child's channel (`Child._answer`), before the gate
looks at them: arguments too deep, too long or too wide are never decided on, rendered or
digested. The refusal is still the gate's, audited and charged to the install's refusal budget
like every other (DESIGN rules 3 and 13), so an app that escaped its runtime (whose own check
runs in the child, where it is no rule) cannot be refused without bound, unseen.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from host.errors import GateError, RefusalBudgetExceeded
from host.gate.actor import acting_user
from host.gate.gate import Gate, Session
from host.ledger.audit import AuditRecord


def refuse_over_caps(gate: Gate, session: Session, action: str, args: Mapping[str, Any],
                     problem: str, frame: bytes) -> GateError:
    """Audit one call whose `args` broke the caps (`problem`), within the install's refusal
    budget, count it as denied, and return the error the app sees (`invalid_argument`).

    The record proves *which* call by a digest of `frame`, the Call frame's bytes as read off
    the channel: at most one frame (`sandbox.wirecaps.MAX_FRAME_BYTES`), so the work is bounded
    whatever the arguments hold; never a digest of the arguments themselves, whose canonical
    rendering is what the caps exist to spare (`args_digest` stays empty). `args` is read only
    for the user a `messages.send_as_user` names, capped (`acting_user`)."""
    digest = hashlib.sha256(frame).hexdigest()
    message = f"{action}: arguments over the frame caps: {problem}"[:500]
    _seq, over = gate.ledger.deny_within(AuditRecord(
        kind="decision", allowed=False, code="invalid_argument", message=message,
        app_id=session.app_id, install_id=session.install_id, action=action[:64],
        actor=acting_user(action, args),
        detail=f"call frame sha256 {digest} ({len(frame)} bytes)",
    ), gate._refusal_budget(session.install_id))
    gate._count(False)
    return (RefusalBudgetExceeded if over else GateError)("invalid_argument", message)
