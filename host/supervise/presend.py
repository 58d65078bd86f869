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

A hook's job goes ahead of the app's queued events (`AppRunner.submit_urgent`), so a message
waits at most for the one event the app is running. Its deadline counts from when it reaches the
child, and the wait for that is bounded by `MAX_START_WAIT_S`: a message waits on one app's hook
at most `MAX_START_WAIT_S` + the hook's deadline + `ANSWER_GRACE_S`. A hook that did not start
in time is cancelled, so it never runs later on a message already decided.

What a hook sees is the documented `Message` (docs/EVENTS.md), built field by field: nothing
else the server hands the host (the sending app's install, in `origin`) reaches another app.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal, NamedTuple

from host.errors import GateError
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.server import limits
from host.server.errors import InvalidArgument, Prevented
from host.server.shapes import Message
from host.supervise.child import AppFailed, ChildDied
from host.supervise.supervisor import AppRunner
from policies.events import strip
from policies.verdicts import verdict_problem

log = logging.getLogger("stockade.presend")

# How much of an app's reason for stopping a message the record keeps (it is the app's text;
# `audit tail` shows it escaped).
MAX_REASON_KEPT = 200
# The longest a message waits for one app's hook to reach its child: the app may be running one
# event (its hook goes ahead of every queued one), which its own deadline ends (the host's
# `event_deadline_s`, 5 s by default). Past it the hook is cancelled and counts as timed out.
MAX_START_WAIT_S = 5.0
# Beyond the hook's own deadline (which the watchdog enforces on the child), for its answer to
# cross back.
ANSWER_GRACE_S = 0.5
# The fields of the documented `Message`, the only ones a hook is shown.
MESSAGE_FIELDS = tuple(Message.__annotations__)


class HookTurn(NamedTuple):
    """Where a hook of a chain runs as its turn comes (`Host._hook_turn`): the runner its app
    runs in then, the payload keys it may not read, and the policy object that decided so (its
    job is decided again if another is in force when the runner takes it)."""

    runner: AppRunner
    hidden: frozenset[str]
    policy: object


class HookNotStarted(TimeoutError):
    """The app was busy past `MAX_START_WAIT_S`: its hook was cancelled before it ran."""


def text_digest(ledger: Ledger, text: str) -> str:
    """The text's sha256, whole, keyed as a record's `args_digest` is (`Ledger.args_key`): a
    plain digest let whoever reads the log test guesses of a short text (a one-time code a
    visitor typed that a redaction hook changed). Whole: cut to 64 bits, an app that sends
    through its own users and judges the message too could find, in about 2^32 tries, a change
    whose record reads as none (the same digest before and after)."""
    return ledger.args_key.mac(hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())


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
                 deadline_s: float, on_timeout: Literal["fail_closed", "fail_open"],
                 admit: Callable[[AppRunner], HookTurn | None]) -> dict[str, Any]:
    """`message` as the hooks leave it, or {"prevented": True, ...} naming the app that
    stopped it. An app's own message never enters its own hook. `admit(runner)`, asked right
    before each hook (a chain of hooks takes up to a deadline each, and a reload, a disable or
    a restart may come in between): None when that app no longer gets the event (not running,
    or the policy in force keeps it from the app), else its `HookTurn`: the runner its app runs
    in now and the keys it may not read (`EventSpec.withheld`: the room), shown to its hook as
    None. Asked again when a hook gave no verdict: an app that ended, or that the policy
    refused, meanwhile (its queued hook then dropped as the runner took it) is passed over, as
    a later message would pass it, rather than failing the message closed."""
    sender_app = message.get("app_id")
    mid = str(message.get("id"))[:64]
    current = {key: message.get(key) for key in MESSAGE_FIELDS}
    for listed in receivers:
        if listed.app_id == sender_app:
            continue
        turn = admit(listed)
        if turn is None:
            continue
        runner = turn.runner
        try:
            verdict = _hook(turn, strip({"message": dict(current), "room": message.get("room")},
                                        turn.hidden), deadline_s)
        except (FutureTimeout, AppFailed, ChildDied, GateError, RuntimeError,
                TimeoutError) as exc:
            if admit(listed) is None:  # ended or refused meanwhile: its drop or stop is audited
                continue
            # A hook cancelled unrun says so: the app was busy, its hook was not slow.
            why = f"{exc}" if isinstance(exc, HookNotStarted) else type(exc).__name__
            _record_stop(ledger, runner, "pre_send_timeout", mid, f"{why}; mode={on_timeout}")
            if on_timeout == "fail_closed":
                said = _unanswered(exc, runner.app_id)
                raise Prevented(f"the pre-send hook of {runner.app_id} {said}; messages fail "
                                "closed", prevented_by=runner.app_id) from None
            continue
        problem = verdict_problem(verdict)
        if problem is not None:  # said, not ignored without a word; the message goes on
            runner.log.note(f"{problem}; message {mid} went on as it was")
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
            problem = _unstorable(new)
            if problem is not None:
                # The server would refuse this text, so the message is stopped by this app's
                # answer: a prevention in the chain, never a "change" to text never stored
                # (nor the sender's InvalidArgument, as if its own text were bad).
                reason = f"its hook returned invalid text ({problem})"
                _record_stop(ledger, runner, "pre_send_prevented",
                             mid, f"message {mid}: stopped: {reason}")
                return {"prevented": True, "prevented_by": runner.app_id, "reason": reason}
            old = str(current.get("text"))
            try:
                supervisor_record(ledger, runner, "pre_send_changed",
                                  f"message {mid}: text {text_digest(ledger, old)} -> "
                                  f"{text_digest(ledger, new)}")
            except Exception as exc:  # noqa: BLE001 - unrecorded, so not applied
                log.warning("pre-send change by %s to message %s not applied: it could not be "
                            "recorded (%s)", runner.app_id, mid, exc)
                continue
            current["text"] = new
    return current


def _unanswered(exc: Exception, app_id: str) -> str:
    """Why a hook gave no verdict, in words for whoever sent the message: a hook that raised
    was said to be slow ("did not answer in time"), sending its author after a slowness that
    was not there. The app's own error text stays in its log: the sender is not its reader."""
    code = getattr(exc, "code", None)
    if isinstance(exc, AppFailed) or code == "load_failed":
        return f"failed (its error is in `stockade app logs {app_id}`)"
    if isinstance(exc, ChildDied) and code != "timeout":
        return "stopped before it answered"
    if isinstance(exc, GateError | RuntimeError) and not isinstance(exc, TimeoutError):
        return "could not be run"
    return "did not answer in time"


def _unstorable(text: str) -> str | None:
    """Why the server would refuse `text` as a message's text on some store, or None. A NUL
    is refused whatever the store: PostgreSQL cannot hold one, and what a hook may write to
    someone else's message must not depend on the operator's choice of store."""
    try:
        limits.message_text(text)
    except InvalidArgument as exc:
        return exc.message
    if "\x00" in text:
        return "text must not contain NUL characters (U+0000)"
    return None


def _hook(turn: HookTurn, payload: dict[str, Any], deadline_s: float) -> Any:
    """The app's verdict: its hook ahead of its queued events, its deadline from its start."""
    future, started = turn.runner.submit_urgent("message.pre_send", payload, deadline_s,
                                                turn.policy)
    if not started.wait(MAX_START_WAIT_S) and future.cancel():
        raise HookNotStarted(f"busy: its hook did not start within {MAX_START_WAIT_S:g} s")
    return future.result(deadline_s + ANSWER_GRACE_S)
