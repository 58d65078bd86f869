"""What an audit record may hold: an allow-list of fields, each with a type and a size cap.

There is no free-form mapping field, so token bodies, secrets, setting values or call arguments
cannot be logged by accident: arguments are recorded as `args_digest`, a keyed digest of their
canonical JSON (`digest_args`, keyed by the ledger: `argsdigest.py`). `validated_body` turns a
record into the canonical JSON line the chain (`audit.py`) hashes and stores; `escape_text`
makes a stored string safe for one line of human output.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import msgspec

from host.ledger.errors import AuditError as AuditError  # re-exported: its old home
from host.ledger.quota import QuotaState

# Longest string stored in any field (characters). Guards the log against app-supplied text
# (a role name, a username echoed in a message) growing records without bound; longer free
# text (`message`, `detail`) is cut with a marker, longer identifiers are refused.
MAX_STR = 512
# Most rule names / quota states in one record: guards record size against a policy with
# thousands of matching rules.
MAX_RULES = 64
MAX_QUOTAS = 16

_KIND_RE = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_TRUNCATE_FIELDS = frozenset({"message", "detail"})
# Most characters of an unknown field's name an error repeats: guards `audit verify`'s message
# (and a refused start's) against a forged body's megabyte-long key.
_NAME_SHOWN = 64


@dataclass(frozen=True)
class AuditRecord:
    """Every field a record may hold. Anything else cannot be logged (see module docstring).

    `kind`: decision | outcome | lifecycle | supervisor | consent | policy | ... (lowercase word).
    Decision fields: allowed, code, message, rules, policy_rev, quota, args_digest, write.
    Outcome fields: ref_seq (the decision), ok, code (error code or "ok"), refunded, reconciled.
    REST bridge calls add `route` (both) and `status` (the outcome's HTTP status).
    A call acting as another identity names it in `actor` on its decision: a REST call the
    server runs as a user, a `messages.send_as_user` the user the app speaks as (`user <id>`).
    Operator fields (`operator.*`, see `host/ledger/operator.py`): actor, app_id, install_id,
    version, generation, grants, setting_keys, kid, detail.
    Segment fields (`segment`, a `--degraded` start: `AuditLog.start_segment`): ref_seq (where
    the old chain broke), head_seq and head_hash (the old chain's head), good_seq and good_hash
    (its last record that verified), rest_digest (the rows after it), actor, detail.
    version, generation, grants, setting_keys, kid, detail, consent_seq.
    """

    kind: str
    allowed: bool | None = None
    code: str | None = None
    message: str | None = None
    rules: tuple[str, ...] = ()
    policy_rev: str | None = None
    quota: tuple[QuotaState, ...] = ()
    app_id: str | None = None
    install_id: str | None = None
    action: str | None = None
    args_digest: str | None = None
    op_id: str | None = None
    write: bool | None = None
    ref_seq: int | None = None
    ok: bool | None = None
    refunded: bool | None = None
    reconciled: bool | None = None
    actor: str | None = None
    event: str | None = None
    version: str | None = None
    generation: int | None = None
    detail: str | None = None
    # A REST bridge call ("POST /api/v1/users.create"), on its decision and outcome records;
    # `status` is the server's HTTP status on the outcome (a 4xx is a refusal, never "ok").
    route: str | None = None
    status: int | None = None
    # Operator records (`operator.*`, DESIGN rule 14): the permissions granted after the change,
    # the names of settings changed (never their values) and a key id (host or publisher key).
    grants: tuple[str, ...] = ()
    setting_keys: tuple[str, ...] = ()
    kid: str | None = None
    # A segment record: the newest record of the broken chain it starts after (seq 0 and the
    # genesis hash when that chain was empty), which `verify` holds the rows before it to.
    head_seq: int | None = None
    head_hash: str | None = None
    # A segment record: the old chain's last record that still verified as a chain (seq 0 and
    # the genesis hash when none did), which pins every record before the break: without it
    # those could be re-hashed unseen, the break staying at the same seq.
    good_seq: int | None = None
    good_hash: str | None = None
    # A segment record: the digest of every row of the old chain after that last good record
    # (`host.ledger.verify.rest_digest`), which pins the rows after the break as they were.
    rest_digest: str | None = None
    # The signed sequence number of the consent an install, consent or update made, on its ok
    # outcome: the chain's memory of each install's latest consent (`host/apps/consentseq.py`).
    consent_seq: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        """Build a record from a mapping, refusing any field not on the allow-list."""
        unknown = sorted(set(data) - _FIELD_NAMES)
        if unknown:
            # Names from a stored body (a forged row `verify` reports) are its writer's text:
            # escaped and cut, so the message stays one short line of the host's.
            names = ", ".join(escape_text(str(n)[:_NAME_SHOWN]) for n in unknown[:5])
            raise AuditError(f"audit record field(s) not allowed: {names}")
        d = dict(data)
        for name in _TUPLE_FIELDS:
            if name in d and isinstance(d[name], list):
                d[name] = tuple(d[name])
        if "quota" in d and isinstance(d["quota"], (list, tuple)):
            d["quota"] = tuple(_quota_from(q) for q in d["quota"])
        rec = cls(**d)
        rec.body()  # validate now
        return rec

    def body(self) -> str:
        """Canonical JSON of the set fields (validated; raises AuditError)."""
        return record_json(_validated(self))


_FIELD_NAMES = frozenset(f.name for f in fields(AuditRecord))
_TUPLE_FIELDS = ("rules", "grants", "setting_keys")


def _quota_from(q: Any) -> QuotaState:
    if isinstance(q, QuotaState):
        return q
    if not isinstance(q, Mapping) or set(q) - {"key", "used", "limit", "window_s", "next_free_at"}:
        raise AuditError("quota entries must be {key, used, limit, window_s, next_free_at}")
    # Types are checked when the record is validated (`_validated`), not here.
    return QuotaState(q.get("key"), q.get("used"), q.get("limit"),  # type: ignore[arg-type]
                      q.get("window_s"), q.get("next_free_at"))  # type: ignore[arg-type]


def _cap_str(name: str, v: object) -> str:
    if not isinstance(v, str):
        raise AuditError(f"audit field {name} must be a string")
    if len(v) > MAX_STR:
        if name in _TRUNCATE_FIELDS:
            return v[: MAX_STR - 1] + "…"
        raise AuditError(f"audit field {name} longer than {MAX_STR} characters")
    return v


def _check_int(name: str, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
        raise AuditError(f"audit field {name} must be a non-negative int")
    return v


def _check_num(name: str, v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise AuditError(f"audit field {name} must be a finite number")
    try:
        f = float(v)  # an int past a double's range (a forged body's) raises OverflowError
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise AuditError(f"audit field {name} must be a finite number")
    return f


def _check_bool(name: str, v: object) -> bool:
    if not isinstance(v, bool):
        raise AuditError(f"audit field {name} must be a bool")
    return v


def _check_kind(name: str, v: object) -> str:
    if not isinstance(v, str) or not _KIND_RE.fullmatch(v):
        raise AuditError("audit kind must be a lowercase word of at most 32 characters")
    return v


def is_hex64(v: object) -> bool:
    """Whether `v` is a digest as records hold them (64 lowercase hex characters)."""
    return isinstance(v, str) and _HEX64_RE.fullmatch(v) is not None


def check_digest(name: str, v: object) -> str:
    if not isinstance(v, str) or not _HEX64_RE.fullmatch(v):
        raise AuditError(f"{name} must be 64 lowercase hex characters"
                         + (" (use digest_args)" if name == "args_digest" else ""))
    return v


def _check_rules(name: str, v: object) -> list[str] | None:
    if not isinstance(v, tuple) or len(v) > MAX_RULES:
        raise AuditError(f"{name} must be a tuple of at most {MAX_RULES} names")
    return [_cap_str(name, r) for r in v] if v else None


def quota_json(states: object) -> list[dict[str, object]] | None:
    """Validated JSON form of a record's quota states (None when there are none)."""
    if not isinstance(states, tuple) or len(states) > MAX_QUOTAS:
        raise AuditError(f"quota must be a tuple of at most {MAX_QUOTAS} states")
    qs: list[dict[str, object]] = []
    for q in states:
        if not isinstance(q, QuotaState):
            raise AuditError("quota entries must be QuotaState")
        qs.append({
            "key": _cap_str("quota.key", q.key),
            "used": _check_int("quota.used", q.used),
            "limit": _check_int("quota.limit", q.limit),
            "window_s": _check_num("quota.window_s", q.window_s),
            "next_free_at": None if q.next_free_at is None
            else _check_num("quota.next_free_at", q.next_free_at),
        })
    return qs or None


# One checker per allowed field: the allow-list of names *and* value types. Each returns the
# JSON value to store (None: leave the field out).
_CHECKERS: dict[str, Callable[[str, Any], object]] = {
    "kind": _check_kind, "args_digest": check_digest, "head_hash": check_digest,
    "good_hash": check_digest, "rest_digest": check_digest,
    "rules": _check_rules,
    "grants": _check_rules, "setting_keys": _check_rules,
    "quota": lambda _n, v: quota_json(v),
}
for _f in fields(AuditRecord):
    if _f.name not in _CHECKERS:
        _CHECKERS[_f.name] = {"str | None": _cap_str, "bool | None": _check_bool,
                              "int | None": _check_int}[str(_f.type)]


def _validated(rec: AuditRecord) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, v in vars(rec).items():
        if v is None:
            continue
        j = _CHECKERS[name](name, v)
        if j is not None:
            out[name] = j
    if "kind" not in out:
        raise AuditError("audit record needs a kind")
    return out


def validated_body(rec: AuditRecord) -> dict[str, object]:
    """The record as a validated JSON-able dict (callers may override checked fields)."""
    return _validated(rec)


def check_field(name: str, v: object) -> str:
    """A string for field `name`: free text is capped, identifiers over MAX_STR are refused."""
    return _cap_str(name, v)


def cap_text(v: str) -> str:
    """Free text for a record's `message`: capped at MAX_STR with a marker."""
    return _cap_str("message", v)


# One encoder for every digest (and each record text `record_json` hands back): `json.dumps`
# with these options builds a new JSONEncoder per call, ~1 µs on the bridge call's hot path. An
# encoder keeps no state between calls (its cycle markers are per call): threads share it.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                              allow_nan=False)


def canonical_json(obj: object) -> str:
    """Sorted keys, no whitespace, ASCII only (so control characters are always escaped)."""
    return _CANONICAL.encode(obj)


# A validated record's body on the hot path (two per call with effects): sorted keys, no
# whitespace, like `canonical_json`, in C (~0.8 µs against ~5 µs for an outcome record).
_RECORD = msgspec.json.Encoder(order="sorted")


def record_json(body: Mapping[str, object]) -> str:
    """The stored text of a validated record body (`validated_body`, `quota_json`, `cap_text`
    made every value a string, bool, finite number, list or None).

    The chain hashes the stored text as it is and `audit verify` never re-encodes a body, so
    what matters is that the text is canonical JSON and ASCII only: it is what
    `canonical_json` gives for the same body, except that a float with an exponent may be
    spelled differently (`1e16` for Python's `1e+16`, `0.00006103515625` for its
    `6.103515625e-05`: both the shortest round trip of the same float). Text
    that is not printable ASCII (non-ASCII characters, DEL, which msgspec writes as they are)
    goes through `canonical_json`, which escapes them.
    """
    try:
        raw = _RECORD.encode(body)
    except (msgspec.EncodeError, TypeError, ValueError, OverflowError):
        return canonical_json(body)
    if not raw.isascii() or b"\x7f" in raw:
        return canonical_json(body)
    return raw.decode("ascii")


# `digest_args`' fast path: the values msgspec writes exactly as the json module does (floats
# are not among them: their exponents are spelled differently, and msgspec writes NaN as null).
_FLAT_VALUES = frozenset({str, int, bool, type(None)})


def _flat_container(v: object) -> bool:
    """A list of flat values, or a dict of string keys to flat values (a creation's `roles`
    and `custom_fields`): msgspec writes it as the json module does too (nested keys sorted)."""
    t = type(v)
    if t is list:
        return all(type(x) in _FLAT_VALUES for x in v)  # type: ignore[attr-defined]
    if t is dict:
        return all(type(k) is str and type(x) in _FLAT_VALUES
                   for k, x in v.items())  # type: ignore[attr-defined]
    return False


def digest_args(args: Mapping[str, Any]) -> str:
    """sha256 of the arguments' canonical JSON: records prove *which* arguments, never hold them
    (the plain digest a producer hands the ledger, which stores it keyed: `argsdigest.py`).

    A bridge call's arguments are nearly always a flat map of strings: for a dict of string
    keys and string, integer, boolean or null values, or lists and string-keyed dicts of those
    (`_flat_container`), whose text is printable ASCII, msgspec
    writes the very bytes `canonical_json` does, in a tenth of the time (a read's digest went
    from ~2.7 to ~1.3 µs). Anything else (a nested value, a float, a non-ASCII or DEL
    character, an integer past 64 bits) takes `canonical_json`. Every digest already recorded
    must stay what it is: `tests/store/test_digest.py` holds the two paths equal."""
    if type(args) is dict:
        for k, v in args.items():
            if type(k) is not str or (type(v) not in _FLAT_VALUES and not _flat_container(v)):
                break
        else:
            try:
                raw = _RECORD.encode(args)
            except (msgspec.EncodeError, OverflowError, TypeError, ValueError):
                raw = b"\x80"  # not ASCII: the json module's path below
            if raw.isascii() and b"\x7f" not in raw:
                return hashlib.sha256(raw).hexdigest()
    return hashlib.sha256(canonical_json(args if type(args) is dict else dict(args)).encode()
                          ).hexdigest()


def escape_text(s: str) -> str:
    """Make app-supplied text safe for one line of human output.

    Escapes control characters (newline, CR, ESC...), Unicode line/paragraph separators and
    format characters (bidi overrides that reorder what the operator reads) as \\uXXXX, and
    backslashes, so an app cannot forge a line or hide text in `audit tail`.
    """
    out: list[str] = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)
