"""The values that cross the engine boundary: a request in, a decision (with quota charges) out.

Plain frozen dataclasses, so the gate can build them on the hot path without validation cost and
compare them in tests. The engine never mutates them and never reads anything else.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

DecisionCode = Literal["allow", "permission_denied", "policy_denied", "guardrail"]
QuotaScope = Literal["install", "app", "workspace"]


@dataclass(frozen=True)
class Request:
    """One bridge call as the gate sees it.

    `app_id` and `install_id` come from the channel (the pipe the frame arrived on), never from
    the frame itself. `facts` are what the host looked up for the engine (see policies/README.md
    for the names); a fact the engine needs but does not find means deny.
    """

    app_id: str
    install_id: str
    action: str
    args: Mapping[str, Any]
    facts: Mapping[str, Any] = field(default_factory=dict)
    now: float = 0.0


@dataclass(frozen=True)
class QuotaCharge:
    """One unit the host must reserve (durably, before the server call) for an allowed request."""

    # Already scoped, and the quota's own: {install:{install_id}|app:{app_id}|workspace}:
    # {action}#{quota_id} (`policies.policy.CompiledQuota.key`)
    key: str
    limit: int
    window_s: int
    scope: QuotaScope
    quota_id: str = ""


# Rule ids one decision names (the first by id; its message may name more). Guards: the audit
# record of every call names its decision's rules and holds at most 64 (`host/ledger/records.py`
# MAX_RULES), and a REST route's record names those of `rest.call` and of the action it amounts
# to together: half each. A set of 65 permits of one app's action, or 65 near misses of a
# refusal, made every such call raise out of the gate unrecorded.
MAX_DECISION_RULES = 32


@dataclass(frozen=True)
class Decision:
    """The engine's answer. `allowed` is True only when `code == "allow"`."""

    allowed: bool
    code: DecisionCode
    message: str
    rules: tuple[str, ...] = ()  # ids of the rules that decided (permits, forbids, or near misses)
    quotas: tuple[QuotaCharge, ...] = ()
    seat_ceiling: int | None = None  # users.create only: max active app-created users

    def __post_init__(self) -> None:
        if len(self.rules) > MAX_DECISION_RULES:
            object.__setattr__(self, "rules", tuple(self.rules[:MAX_DECISION_RULES]))
