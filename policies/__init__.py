"""Stockade policy engine: pure, deterministic decisions over policy files (no I/O).

Public API: `decide`, `Request`, `Decision`, `QuotaCharge`, `Policy`, `load_policy`,
`load_policy_text`, `PolicyLoadError`, `Finding`. The quota window math lives in
`policies.quota`.
"""
from __future__ import annotations

from policies.engine import decide
from policies.policy import Policy, compile_policy
from policies.types import Decision, QuotaCharge, Request

__all__ = ["Decision", "Policy", "QuotaCharge", "Request", "compile_policy", "decide"]
