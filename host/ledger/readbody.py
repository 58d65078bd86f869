"""The canonical body of a read's allow record, from a template per caller and rule set.

Every read the gate allows appends one record that differs from the app's previous read only
in `args_digest` (DESIGN rule 9 holds it for the group commit). Building and validating the
whole record per read (a 30-field dataclass, the field-by-field allow-list check, the sorted
JSON encoding) was ~13 µs of a bridge read's ~120 µs in the gate, the same work each time. A
template is that work done once, by the same code (`validated_body`, `record_json`), for one
(app, install, action, rules, policy revision); a read then checks its digest against the same
rule the full path uses and puts it in the template's place. The result is the same string the
full path builds (`tests/store/test_read_bodies.py` holds the two equal under hypothesis).
"""
from __future__ import annotations

import threading

from host.ledger.records import AuditRecord, check_digest, record_json, validated_body

# Templates kept per process (one per app, action and policy revision in use): guards memory
# against many apps and policy reloads; past it, the cache starts again (the next read of each
# key builds its template anew, ~15 µs).
MAX_TEMPLATES = 4096
# Stands in for the digest while the template is built: a valid digest (64 lowercase hex), so
# the full validation runs on the template exactly as on a read's record.
_PLACEHOLDER = "0" * 64

TemplateKey = tuple[str, str, str, tuple[str, ...], str]


class ReadBodies:
    """Read records' canonical bodies by template (see the module docstring)."""

    def __init__(self) -> None:
        self._templates: dict[TemplateKey, tuple[str, str] | None] = {}
        self._lock = threading.Lock()  # guards the clear-when-full, not each look-up

    def body(self, app_id: str, install_id: str, action: str, rules: tuple[str, ...],
             policy_rev: str, args_digest: str) -> str:
        """The body `record_json(validated_body(read_record(...)))` would give."""
        key = (app_id, install_id, action, rules, policy_rev)
        try:
            parts = self._templates[key]
        except KeyError:
            parts = self._build(key)
        if parts is None:  # the placeholder is not unique in the body: the full path
            return record_json(validated_body(read_record(*key, args_digest)))
        return parts[0] + check_digest("args_digest", args_digest) + parts[1]

    def _build(self, key: TemplateKey) -> tuple[str, str] | None:
        text = record_json(validated_body(read_record(*key, _PLACEHOLDER)))
        parts = tuple(text.split(_PLACEHOLDER))
        built = (parts[0], parts[1]) if len(parts) == 2 else None
        with self._lock:
            if len(self._templates) >= MAX_TEMPLATES:
                self._templates.clear()
            self._templates[key] = built
        return built


def read_record(app_id: str, install_id: str, action: str, rules: tuple[str, ...],
                policy_rev: str, args_digest: str) -> AuditRecord:
    """The allow record of a read (no write, no quota, no route): what `Ledger.admit` holds."""
    return AuditRecord(kind="decision", allowed=True, code="allow", rules=rules,
                       policy_rev=policy_rev, app_id=app_id, install_id=install_id,
                       action=action, args_digest=args_digest, write=False)
