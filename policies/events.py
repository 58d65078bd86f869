"""`decide_event(policy, grants, app_id, install_id, event) -> Decision`: may an event reach an app?

An event's payload is data the app could otherwise only read through the gate (a message's
text, a visitor's e-mail, token and custom fields), so the operator's policy limits it as it
limits those reads (DESIGN rule 7: an app's power = manifest ∩ consent ∩ policy; rule 11: no
side doors). `EventSpec.amounts_to` in `policies/vocabulary.py` names, once, the bridge actions
each event's data amounts to; the event is allowed only when `decide` allows every one of them.

Each action is decided with placeholder arguments and no facts: an event offers none of the
facts a rule condition reads (a target user's creator, resolved addresses, a REST route's
mapping, roles, field keys). The actions events amount to are plain reads whose rules have no
condition that concerns them (a `when` on them is ignored by the engine, for a permit and a
forbid alike), so the answer depends only on the policy, the grants, the app and the event
kind: the host caches it per (policy revision, install, event). An action that a condition
could concern (`CONDITIONED`) is refused outright, fail closed, never decided on facts the
event cannot give; a test holds that no event amounts to one today.

Some payload keys are reads of their own (`EventSpec.withheld`: a message event's room is what
`livechat.get_room` answers): the event still reaches an app that may read its message, and
`withheld_keys` names the keys it gets as None, decided the same way (permission, then policy).
"""
from __future__ import annotations

from typing import Any

from policies.engine import FIELD_ACTIONS, ROLE_ACTIONS, TARGET_USER_ACTIONS, decide
from policies.policy import Policy
from policies.types import Decision, DecisionCode, Request
from policies.vocabulary import ACTIONS, EVENTS

# Actions whose decision reads conditions or facts tied to the call's arguments (the engine's
# `_guardrails`, `_permit_failure` and `_forbid_applies`): an event cannot answer them.
CONDITIONED = frozenset({*TARGET_USER_ACTIONS, *ROLE_ACTIONS, *FIELD_ACTIONS,
                         "users.create", "http.request", "rest.call"})
# What stands in for each required argument. The engine checks only its shape for these actions
# (a non-empty string); no rule reads its value.
PLACEHOLDER = "(the event's own)"


def _deny(message: str, rules: tuple[str, ...] = (),
          code: DecisionCode = "policy_denied") -> Decision:
    return Decision(allowed=False, code=code, message=message, rules=rules)


def _undecidable(action: str) -> bool:
    return action not in ACTIONS or action in CONDITIONED


def event_request(app_id: str, install_id: str, action: str) -> Request:
    """The read `action` as an event amounts to it: placeholder arguments, no facts."""
    spec = ACTIONS[action]
    return Request(app_id, install_id, action, dict.fromkeys(spec.args, PLACEHOLDER))


def decide_event(policy: Policy, grants: frozenset[str], app_id: str, install_id: str,
                 event: str) -> Decision:
    """Whether `event` may reach this install: every action it amounts to allowed. Pure."""
    spec = EVENTS.get(event)
    if spec is None:
        return _deny(f"unknown event {event!r}: not in the vocabulary")
    missing = [p for p in spec.needs if p not in grants]
    if missing:
        return _deny(f"event {event} needs permission(s) {missing}, not granted to this install",
                     code="permission_denied")
    if not spec.amounts_to:
        return _deny(f"event {event} names no action its data amounts to: never delivered")
    rules: set[str] = set()
    for action in spec.amounts_to:
        if _undecidable(action):
            return _deny(f"event {event} amounts to {action}, whose rules need facts an event "
                         "does not offer: never delivered (fail closed)")
        d = decide(policy, grants, event_request(app_id, install_id, action))
        if not d.allowed:
            return _deny(f"event {event} carries what {action} reads, and {action} is refused: "
                         f"{d.message}", d.rules, d.code)
        rules.update(d.rules)
    return Decision(allowed=True, code="allow",
                    message=f"event {event} allowed as {', '.join(spec.amounts_to)}",
                    rules=tuple(sorted(rules)))


def withheld_keys(policy: Policy, grants: frozenset[str], app_id: str, install_id: str,
                  event: str) -> frozenset[str]:
    """The payload keys (`a.b`: a field of one) of `event` this install gets as None: those
    whose own read (`EventSpec.withheld`) its grants or the policy refuse it (fail closed: an
    action whose rules need facts is refused too). Pure; meaningful only for an event
    `decide_event` allows."""
    spec = EVENTS.get(event)
    if spec is None:
        return frozenset()
    return frozenset(
        key for key, action in spec.withheld
        if _undecidable(action)
        or not decide(policy, grants, event_request(app_id, install_id, action)).allowed)


def strip(payload: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    """`payload` with each of `keys` set to None (the same dict when there is none). A key
    `a.b` is field `b` of the object at `a` (an agent's username), set to None in a copy of
    that object; an absent or None object stays as it is. The payload is never changed in
    place: other receivers share it."""
    if not keys:
        return payload
    out = dict(payload)
    for key in sorted(keys):
        head, _, field = key.partition(".")
        if not field:
            out[head] = None
        elif isinstance(out.get(head), dict):
            out[head] = {**out[head], field: None}
    return out


def held(payload: dict[str, Any], key: str) -> bool:
    """Whether `payload` still holds `key` (`a.b` as in `strip`): not None."""
    head, _, field = key.partition(".")
    value = payload.get(head)
    if field and isinstance(value, dict):
        value = value.get(field)
    elif field:
        return False
    return value is not None
