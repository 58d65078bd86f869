"""The pre-send hook chain: each app that handles `message.pre_send` sees a message before it is
stored, in app-id order, and may change its text or stop it.

That power over other people's messages (disclosed as seeing and changing every message) acts
outside the gate, so what each hook did goes into the audit chain here: `pre_send_changed`
names the app and the message with digests of the text before and after (proof of *which* text,
never the text, like a call's argument digest), `pre_send_prevented` the app, the message and the
app's reason. A change that cannot be recorded is not applied (the message goes on with the text
it had): nothing an app does to a message is left out of the record. A prevention stops the
message whether or not its record is written (not sending is the safe side); a timeout's or a
stop's record that cannot be written is logged.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal

from host.errors import GateError
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.server.errors import Prevented
from host.supervise.child import AppFailed, ChildDied
from host.supervise.supervisor import AppRunner

log = logging.getLogger("stockade.presend")

# How much of an app's reason for stopping a message the record keeps (it is the app's text;
# `audit tail` shows it escaped).
MAX_REASON_KEPT = 200


def text_digest(text: str) -> str:
    """The first 16 hex digits of the text's sha256: enough to tell texts apart in the chain."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def supervisor_record(ledger: Ledger, runner: AppRunner, event: str, detail: str) -> None:
    """One `supervisor` record about `runner` (raises when it cannot be written; the host's
    `audit_supervisor` is this, best-effort)."""
    ledger.append(AuditRecord(kind="supervisor", app_id=runner.app_id,
                              install_id=runner.install_id, event=event, detail=detail[:500]))


def _record_stop(ledger: Ledger, runner: AppRunner, event: str, mid: str, detail: str) -> None:
    """A timeout's or a stop's record: the message is stopped (or passes) either way, so a
    record the chain cannot take is logged, not raised."""
    try:
        supervisor_record(ledger, runner, event, detail)
    except Exception as exc:  # noqa: BLE001 - the outcome stands; the gap is reported
        log.warning("%s of %s for message %s could not be recorded (%s)", event, runner.app_id,
                    mid, exc)


def run_pre_send(message: dict[str, Any], receivers: Sequence[AppRunner], ledger: Ledger,
                 deadline_s: float, on_timeout: Literal["fail_closed", "fail_open"]
                 ) -> dict[str, Any]:
    """`message` as the hooks leave it, or {"prevented": True, ...} naming the app that
    stopped it. An app's own message never enters its own hook."""
    sender_app = message.get("app_id")
    mid = str(message.get("id"))[:64]
    current = dict(message)
    for runner in receivers:
        if runner.app_id == sender_app:
            continue
        fut = runner.submit("message.pre_send", {"message": current, "room": message.get("room")},
                            deadline_s)
        try:
            verdict = fut.result(deadline_s + 0.5)
        except (FutureTimeout, AppFailed, ChildDied, GateError, RuntimeError,
                TimeoutError) as exc:
            _record_stop(ledger, runner, "pre_send_timeout", mid,
                         f"{type(exc).__name__}; mode={on_timeout}")
            if on_timeout == "fail_closed":
                raise Prevented(f"the pre-send hook of {runner.app_id} did not answer in time; "
                                "messages fail closed", prevented_by=runner.app_id) from None
            continue
        if not isinstance(verdict, dict):
            continue
        if verdict.get("prevent"):
            reason = str(verdict.get("reason") or "no reason given")
            _record_stop(ledger, runner, "pre_send_prevented", mid,
                         f"message {mid}: stopped: {reason[:MAX_REASON_KEPT]}")
            return {"prevented": True, "prevented_by": runner.app_id, "reason": reason}
        new = verdict.get("text")
        if isinstance(new, str) and new != current.get("text"):
            old = str(current.get("text"))
            try:
                supervisor_record(ledger, runner, "pre_send_changed",
                                  f"message {mid}: text {text_digest(old)} -> {text_digest(new)}")
            except Exception as exc:  # noqa: BLE001 - unrecorded, so not applied
                log.warning("pre-send change by %s to message %s not applied: it could not be "
                            "recorded (%s)", runner.app_id, mid, exc)
                continue
            current["text"] = new
    return current
