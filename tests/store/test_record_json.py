"""A record's stored text from `record_json` (msgspec, the hot path) is canonical JSON and ASCII
only, as `canonical_json` (the json module) makes it: the same text for every body whose floats
Python spells without an exponent, the same values for every body. Escaping matters: an app's
text (a username echoed in a message, a role name) holding control, DEL, bidi or line-separator
characters must reach the log escaped, never raw."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from host.ledger.quota import QuotaState
from host.ledger.records import AuditRecord, canonical_json, record_json, validated_body

_TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('"\\\n\x00\x7f\u202e\u2028é'),
                max_size=60)
# Floats Python spells without an exponent (not below 1e-4, not from 1e16): the spelling of an
# exponent is where the two encoders may differ (the second test holds their values equal).
_PLAIN_FLOAT = st.floats(min_value=0, max_value=1e15, allow_nan=False,
                         allow_infinity=False).filter(lambda f: "e" not in repr(f))


@st.composite
def _records(draw: st.DrawFn, floats: st.SearchStrategy[float]) -> AuditRecord:
    quota = tuple(QuotaState(draw(_TEXT), draw(st.integers(0, 2**62)),
                             draw(st.integers(0, 2**62)), draw(floats),
                             draw(st.none() | floats))
                  for _ in range(draw(st.integers(0, 2))))
    return AuditRecord(
        kind="decision", allowed=draw(st.booleans()), code=draw(st.none() | _TEXT),
        message=draw(st.none() | _TEXT), rules=tuple(draw(st.lists(_TEXT, max_size=3))),
        policy_rev=draw(st.none() | _TEXT), app_id=draw(_TEXT), install_id=draw(_TEXT),
        action=draw(_TEXT), op_id=draw(st.none() | _TEXT), write=draw(st.none() | st.booleans()),
        ref_seq=draw(st.none() | st.integers(0, 2**62)), quota=quota, detail=draw(st.none() | _TEXT),
    )


@settings(max_examples=400, deadline=None)
@given(rec=_records(_PLAIN_FLOAT))
def test_a_records_text_is_what_the_json_module_writes(rec: AuditRecord) -> None:
    body = validated_body(rec)
    text = record_json(body)
    assert text == canonical_json(body)
    assert text.isascii() and "\x7f" not in text


@settings(max_examples=300, deadline=None)
@given(rec=_records(st.floats(min_value=0, allow_nan=False, allow_infinity=False)))
def test_any_float_keeps_its_value_and_the_text_stays_ascii(rec: AuditRecord) -> None:
    body = validated_body(rec)
    text = record_json(body)
    assert json.loads(text) == json.loads(canonical_json(body))
    assert text.isascii() and "\x7f" not in text
    assert rec.body() == text


def test_control_and_format_characters_are_escaped() -> None:
    text = record_json({"kind": "decision", "message": "a\x1b[2J\x7f\u202eb\u2028"})
    assert text == '{"kind":"decision","message":"a\\u001b[2J\\u007f\\u202eb\\u2028"}'
