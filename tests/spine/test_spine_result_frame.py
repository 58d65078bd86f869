"""The child builds a handler's Done frame from a template; the host reads it with the model.

The template (`sandbox.runtime._result_frame`) must produce, for every plain-JSON result, a
frame the host's strict `Done` model accepts with the same value; anything else must become
the handler's error, never a frame the host would refuse (which kills the child).
"""
from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.protocol import CHILD_FRAME, Done
from sandbox.runtime import _result_frame
from sandbox.wirecaps import MAX_NAME

_scalars = (st.none() | st.booleans() | st.integers(min_value=-(1 << 63) + 1, max_value=(1 << 63) - 1)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=MAX_NAME), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(req_id=st.integers(min_value=1, max_value=(1 << 53) - 1), result=_json)
def test_any_json_result_reads_back_as_the_same_done(req_id: int, result: Any) -> None:
    frame = CHILD_FRAME.validate_json(_result_frame(req_id, result))
    assert isinstance(frame, Done)
    assert frame == Done(id=req_id, ok=True, result=result)


def test_text_that_needs_escaping_survives() -> None:
    text = 'quote " backslash \\ newline \n nul \x00 emoji \U0001f600 </script>'
    frame = CHILD_FRAME.validate_json(_result_frame(7, {"k": [text]}))
    assert isinstance(frame, Done) and frame.result == {"k": [text]}


def test_a_result_that_is_not_json_data_is_the_handlers_error() -> None:
    for bad in (object(), {1: "int key"}, [math.nan], {"x": {1, 2}}, "\ud800"):
        frame = CHILD_FRAME.validate_json(_result_frame(3, bad))
        assert isinstance(frame, Done)
        assert frame.ok is False and frame.error is not None
        assert frame.error.code == "app_error"
        assert "not plain JSON" in frame.error.message
