"""`digest_args` has a fast path (msgspec) beside the json module's canonical form: both must give
the same digest for every argument map, or a record written today would not match one written
before, and `audit verify` could not say which arguments a call carried."""
from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from host.ledger.records import canonical_json, digest_args


def _reference(args: dict[str, object]) -> str:
    return hashlib.sha256(canonical_json(args).encode()).hexdigest()


_TEXT = st.text(alphabet=st.characters(codec="utf-8")
                | st.sampled_from('"\\/\n\r\t\b\f\x00\x1f\x7f\u2028é<>&'), max_size=24)
_ASCII = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=24)
_SCALARS = (_TEXT | _ASCII | st.integers(-(2**70), 2**70) | st.booleans() | st.none()
            | st.floats(allow_nan=False, allow_infinity=False))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_ASCII, inner, max_size=3), max_leaves=6)


@settings(max_examples=600, deadline=None)
@given(args=st.dictionaries(_TEXT | _ASCII, _VALUES, max_size=5))
def test_the_fast_digest_is_the_canonical_one(args: dict[str, object]) -> None:
    assert digest_args(args) == _reference(args)


@settings(max_examples=300, deadline=None)
@given(args=st.dictionaries(_ASCII, _ASCII | st.integers(-(2**63), 2**64) | st.booleans()
                            | st.none(), max_size=6))
def test_flat_ascii_maps_are_the_canonical_digest(args: dict[str, object]) -> None:
    # The shape the fast path takes (a bridge call's usual arguments), drawn directly.
    assert digest_args(args) == _reference(args)


def test_every_ascii_character_escapes_as_the_json_module_does() -> None:
    for code in range(0x80):
        ch = chr(code)
        args = {"k" + ch: "v" + ch, ch: ch * 3}
        assert digest_args(args) == _reference(args), repr(ch)


def test_a_known_digest_is_unchanged() -> None:
    # The bytes hashed are the canonical JSON text: sorted keys, no whitespace, ASCII escapes.
    args = {"user_id": "Mv6GxRewJSrqYTqnA", "active": True, "n": 3, "none": None}
    text = b'{"active":true,"n":3,"none":null,"user_id":"Mv6GxRewJSrqYTqnA"}'
    assert digest_args(args) == hashlib.sha256(text).hexdigest()
    del_text = b'{"k":"\\u007f"}'
    assert digest_args({"k": "\x7f"}) == hashlib.sha256(del_text).hexdigest()


@settings(max_examples=300, deadline=None)
@given(args=st.dictionaries(
    _ASCII, _ASCII | st.lists(_ASCII | st.integers(-(2**63), 2**64) | st.none(), max_size=4)
    | st.dictionaries(_ASCII, _ASCII | st.booleans() | st.none(), max_size=4), max_size=5))
def test_lists_and_maps_of_flat_values_are_the_canonical_digest(args: dict[str, object]) -> None:
    # A creation's shape (`roles`, `custom_fields`), which the fast path takes too: nested keys
    # must come out sorted as the json module sorts them.
    assert digest_args(args) == _reference(args)
    unsorted = {"custom_fields": {"z": "1", "a": "2", "m": None}, "roles": ["bot", "agent"]}
    assert digest_args(unsorted) == _reference(unsorted)
