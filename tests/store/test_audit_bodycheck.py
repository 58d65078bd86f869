"""`audit verify`'s fast body check (`host/ledger/bodycheck.py`) is never looser than the reference
(`AuditRecord.from_dict`), and with its fallback it answers exactly as the reference does."""
from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from host.ledger import bodycheck
from host.ledger.records import MAX_STR, AuditError, AuditRecord

SEEDS: list[dict[str, Any]] = [
    {"kind": "decision", "allowed": True, "code": "allow", "write": True, "rules": ["r"],
     "policy_rev": "0" * 64, "app_id": "a", "install_id": "in_1", "action": "users.create",
     "args_digest": "ab" * 32, "op_id": "op_1",
     "quota": [{"key": "k", "used": 1, "limit": 5, "window_s": 3600.0, "next_free_at": None}]},
    {"kind": "outcome", "ref_seq": 3, "op_id": "op_1", "ok": False, "code": "conflict",
     "refunded": True, "reconciled": False, "status": 409, "route": "POST /x"},
    {"kind": "operator.install", "actor": "root", "app_id": "a", "version": "1.0.0",
     "generation": 2, "grants": ["users.read"], "setting_keys": ["k"], "kid": "k1",
     "detail": "d", "message": "m", "event": "e"},
]
_EDGES: list[Any] = [
    None, True, False, 0, 1, -1, 2**63 - 1, 2**63, 1.5, "", "x", "A", "x" * MAX_STR,
    "x" * (MAX_STR + 1), "decision\n", "ab" * 32, "AB" * 32, [], ["r"], ["r"] * 65, [1], {},
    [{"key": "k", "used": 1, "limit": 2, "window_s": 1}], [{"key": "k", "used": 1.0, "limit": 2,
                                                           "window_s": 1}],
    [{"key": "k", "used": 1, "limit": 2, "window_s": True}], [{"key": "k", "used": 1}],
    [{"key": "k", "used": 1, "limit": 2, "window_s": 1, "extra": 0}],
]
_NAMES = [f.name for f in fields(AuditRecord)]


def _reference_ok(body: str) -> bool:
    try:
        AuditRecord.from_dict(json.loads(body))
    except (ValueError, TypeError, AuditError):
        return False
    return True


def _fast_ok(body: str) -> bool:
    try:
        return bodycheck._DECODER.decode(body).kind is not None
    except (msgspec.DecodeError, RecursionError):
        return False


def test_the_struct_has_exactly_the_records_fields() -> None:
    assert set(bodycheck._Body.__struct_fields__) == set(_NAMES)


@settings(max_examples=600, deadline=None)
@given(seed=st.sampled_from(SEEDS), key=st.sampled_from([*_NAMES, "extra", "secret"]),
       value=st.sampled_from(_EDGES), drop=st.sampled_from([None, "kind", "code", "quota"]))
def test_fast_check_is_never_looser_and_answers_as_the_reference(
        seed: dict[str, Any], key: str, value: Any, drop: str | None) -> None:
    record = {k: v for k, v in {**seed, key: value}.items() if k != drop}
    body = json.dumps(record, sort_keys=True, separators=(",", ":"))
    ref = _reference_ok(body)
    if _fast_ok(body):
        assert ref, body
    assert (bodycheck.body_problem(body) is None) == ref, body


def test_bodies_the_fast_path_refuses_are_decided_by_the_reference() -> None:
    long_message = json.dumps({"kind": "decision", "message": "m" * (MAX_STR + 5)})
    assert not _fast_ok(long_message)
    assert bodycheck.body_problem(long_message) is None  # the reference truncates, as ever
    assert bodycheck.body_problem('{"kind":"x","ok":1}') is not None
    assert bodycheck.body_problem('["kind"]') is not None
    assert bodycheck.body_problem('{"allowed":true}') is not None  # no kind


def test_a_number_no_float_holds_is_a_bad_record_never_an_error() -> None:
    """A forged body's quota time written as an integer past a double's range (which msgspec
    leaves to the reference) made the reference's finiteness check raise OverflowError out of
    `audit verify`, `tail` and `show`. Found by the long hypothesis/atheris runs' review."""
    huge = "9" * 400
    for field in ("window_s", "next_free_at"):
        body = ('{"kind":"decision","quota":[{"key":"k","used":1,"limit":2,"window_s":1,'
                f'"{field}":{huge}}}]}}')
        assert not _fast_ok(body)
        assert not _reference_ok(body)
        assert "finite number" in (bodycheck.body_problem(body) or ""), body
    # an integer a float does hold is still a valid time, as before
    assert bodycheck.body_problem('{"kind":"decision","quota":[{"key":"k","used":1,"limit":2,'
                                  '"window_s":' + "9" * 30 + '}]}') is None
