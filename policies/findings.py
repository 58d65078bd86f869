"""Lint findings: a stable code, a severity, a file:line:column location and a plain message.

Codes never change meaning once shipped; retire a code rather than reuse it. The table below is
also what `policies/README.md` documents for reviewers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "security-warning", "warning", "suggestion"]

# Severities that make `stockade policy check` exit 1, and make the loader refuse the
# whole set of files (the host then keeps its previous policy or, at start, denies everything).
FAILING: frozenset[str] = frozenset({"error", "security-warning"})

CODES: dict[str, tuple[Severity, str]] = {
    "STK001": ("error", "file cannot be read (missing, too large, symlink, not UTF-8)"),
    "STK002": ("error", "TOML syntax error"),
    "STK003": ("error", "duplicate key"),
    "STK004": ("error", "unknown field"),
    "STK005": ("error", "wrong type"),
    "STK006": ("error", "invalid or missing value"),
    "STK007": ("error", "number outside the 32-bit range"),
    "STK008": ("error", "nesting too deep"),
    "STK010": ("error", "unknown action or permission name"),
    "STK011": ("error", "duplicate rule id"),
    "STK012": ("error", "duplicate quota id"),
    "STK013": ("security-warning", "user creation permitted without a quota"),
    "STK014": ("security-warning", "wildcard apps"),
    "STK015": ("security-warning", "wildcard actions"),
    "STK016": ("warning", "quota on an action no rule permits"),
    "STK017": ("error", "zero or negative quota limit"),
    "STK018": ("error", "zero or negative quota window or seat ceiling"),
    "STK019": ("error", "absurdly large limit, window or seat ceiling"),
    "STK020": ("security-warning", "admin-class role in an allow list (never granted)"),
    # Retired: patterns run on RE2 (policies/pattern.py), whose time is linear in the input.
    "STK021": ("security-warning", "retired: username_pattern could backtrack"),
    "STK022": ("error", "username_pattern does not compile (RE2 syntax) or is too long"),
    "STK023": ("suggestion", "private address allowed"),
    "STK024": ("warning", "forbid shadows nothing"),
    "STK025": ("error", "invalid list entry (role, type, domain, route or address)"),
    "STK026": ("warning", "constraint does not concern any action of the rule"),
    "STK027": ("security-warning", "any_user widens to users the app did not create"),
    "STK028": ("warning", "permit can never allow (a required list is missing)"),
    "STK029": ("warning", "conflicting workspace ceilings (the smallest applies)"),
    "STK030": ("warning", "two quotas count the same calls"),
    "STK031": ("warning", "constraint has no meaning in a forbid (ignored)"),
    "STK032": ("warning", "no policy files found"),
    "STK033": ("security-warning", "role assignment or user deactivation permitted without quota"),
    "STK034": ("warning", "a domain entry reaches every port of its host"),
    "STK035": ("warning", "a rest_routes entry names a route no app may ever call"),
    "STK036": ("warning", "a listed role amounts to an action no permit allows (always refused)"),
    "STK037": ("warning", "a forbid's empty list forbids nothing"),
    "STK038": ("warning", "a permit's constraint does not restrict one of its actions"),
    "STK039": ("error", "one call could be charged more quotas than its audit record holds"),
    "STK040": ("warning", "any_user cannot widen a role that impersonates to people"),
}


@dataclass(frozen=True)
class Finding:
    """One lint finding. `line` and `column` are 1-based, 0 when the file as a whole (or the
    whole line) is concerned."""

    code: str
    severity: Severity
    file: str
    line: int
    message: str
    column: int = 0

    @property
    def location(self) -> str:
        """`file:line:column` as compilers print it (editors jump there), or less when unknown."""
        if not self.line:
            return self.file
        if not self.column:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


def finding(
    code: str, file: str, at: int | tuple[int, int] | None, message: str,
    severity: Severity | None = None,
) -> Finding:
    """Build a finding with the code's default severity unless one is given. `at` is a line or
    a (line, column) pair from policies.locate."""
    line, column = at if isinstance(at, tuple) else (at or 0, 0)
    return Finding(code, severity or CODES[code][0], file, line, message, column)


def failing(findings: list[Finding]) -> bool:
    """True when any finding is an error or a security-warning."""
    return any(f.severity in FAILING for f in findings)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Stable output order: file, line, column, code, message."""
    return sorted(findings, key=lambda f: (f.file, f.line, f.column, f.code, f.message))
