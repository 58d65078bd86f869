"""A stored audit body checked fast: `verify` walks every record, so its check must be cheap.

`AuditRecord.from_dict(json.loads(body))` is the reference for "a valid record" (the allow-list
of fields, their types and caps, `records.py`). It builds the dataclass, validates it and
serialises it again: ~25 µs a record, which made `audit verify` of 10⁶ records take ~40 s here.
`valid_body` decodes the body once into a msgspec struct with the same fields, types and caps
(~2 µs). A body the struct accepts is one the reference accepts (the struct is never looser:
`tests/store/test_audit_bodycheck.py` holds that over generated bodies); a body it refuses goes
to the reference, which decides, so nothing the reference accepts is refused either (a stored
`message` over the cap, which the reference truncates on read, takes that path).
"""
from __future__ import annotations

import json
from typing import Annotated

import msgspec

from host.ledger.records import MAX_QUOTAS, MAX_RULES, MAX_STR, AuditError, AuditRecord

Str = Annotated[str, msgspec.Meta(max_length=MAX_STR)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Names = Annotated[list[Str], msgspec.Meta(max_length=MAX_RULES)]


class _Quota(msgspec.Struct, forbid_unknown_fields=True):
    key: Str
    used: Count
    limit: Count
    window_s: float  # msgspec accepts a JSON int here too, as `_check_num` does
    next_free_at: float | None = None


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    kind: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,31}\Z")] | None = None
    allowed: bool | None = None
    code: Str | None = None
    message: Str | None = None
    rules: Names | None = None
    policy_rev: Str | None = None
    quota: Annotated[list[_Quota], msgspec.Meta(max_length=MAX_QUOTAS)] | None = None
    app_id: Str | None = None
    install_id: Str | None = None
    action: Str | None = None
    args_digest: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}\Z")] | None = None
    op_id: Str | None = None
    write: bool | None = None
    ref_seq: Count | None = None
    ok: bool | None = None
    refunded: bool | None = None
    reconciled: bool | None = None
    actor: Str | None = None
    event: Str | None = None
    version: Str | None = None
    generation: Count | None = None
    detail: Str | None = None
    route: Str | None = None
    status: Count | None = None
    grants: Names | None = None
    setting_keys: Names | None = None
    kid: Str | None = None
    head_seq: Count | None = None
    head_hash: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}\Z")] | None = None
    good_seq: Count | None = None
    good_hash: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}\Z")] | None = None
    rest_digest: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}\Z")] | None = None
    consent_seq: Count | None = None


_DECODER = msgspec.json.Decoder(_Body)


def body_problem(body: str) -> str | None:
    """Why `body` is not a valid stored record, or None if it is."""
    try:
        if _DECODER.decode(body).kind is not None:
            return None
    except (msgspec.DecodeError, RecursionError):
        pass
    try:
        AuditRecord.from_dict(json.loads(body))
    except (ValueError, TypeError, AuditError) as e:
        return str(e)
    except RecursionError:
        # Nested past the decoder's stack (a forged row: no valid record nests at all). A
        # bad record like any other, never an error out of `verify` or an anchoring.
        return "nested too deeply"
    return None
