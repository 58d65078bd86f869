"""Stockade policy engine: pure, deterministic decisions over policy files (no I/O in decide).

Public API: `decide(policy, grants, req) -> Decision`, `Request`, `Decision`, `QuotaCharge`,
`Policy` (with `.revision` and `.seat_ceiling`), `load_policy(*paths)`, `load_policy_text`,
`PolicyLoadError`, `Finding`. The exact sliding-window math lives in `policies.quota`.
"""
from __future__ import annotations

from policies.engine import decide
from policies.findings import Finding
from policies.loader import PolicyLoadError, load, load_policy, load_policy_text
from policies.policy import Policy, compile_policy
from policies.types import Decision, QuotaCharge, Request

__all__ = [
    "Decision",
    "Finding",
    "Policy",
    "PolicyLoadError",
    "QuotaCharge",
    "Request",
    "compile_policy",
    "decide",
    "load",
    "load_policy",
    "load_policy_text",
]
