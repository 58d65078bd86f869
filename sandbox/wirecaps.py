"""The wire's caps and the check of JSON data against them: what both ends of the channel and
the host's bridges hold a frame to, with no pydantic in sight.

`sandbox/protocol.py` holds the frames as pydantic models (the reference), held to these caps;
this module is apart so that a child's runtime, which decodes with the msgspec structs alone
(`sandbox/frames.py`), imports no pydantic: its zygote starts ~0.3 s sooner (with a result's
encoding moved off pydantic_core, `frames.encode_value`), at every host's start, and holds none
of the memory every forked child shared.
"""
from __future__ import annotations

import math
from typing import Any

PROTOCOL_VERSION = 1

# Caps on what one frame may carry. They bound the host's parsing work and memory per frame, so
# a hostile child cannot make the host allocate or recurse without limit.
MAX_FRAME_BYTES = 1 << 20  # whole frame body
MAX_STRING = 64 * 1024  # one string value inside args/results
MAX_NESTING = 16  # depth of nested lists/dicts in args/results
MAX_ITEMS = 2048  # entries in one list or dict
# Values (every string, number, list, object...) in one Call's args or one handler's result.
# Guards the host's CPU: each value costs the host its check, a digest or two and the policy's
# reading before any action refuses a bad argument, and a 1 MiB frame holds ~500,000 of them
# (~200 ms of host CPU a call). A 64 KiB persistence value holds at most ~33,000 (a digit and
# a comma each), so the largest any action takes fits.
MAX_VALUES = 40_000
MAX_NAME = 128  # action and event names, error codes
MAX_MESSAGE = 2048  # error messages (capped text, never a host traceback)
MAX_LOG = 64 * 1024  # one log frame's text
# A handler's result, as JSON: its Done frame's other fields (`{"t":"done","id":N,"ok":true,
# "result":...}`, under 64 bytes) and it fit in MAX_FRAME_BYTES. A larger one could not be
# sent: the child left its loop and died ("child exited with code 0"); it is now refused as the
# handler's error, in the child and in the author harness alike.
MAX_RESULT_BYTES = MAX_FRAME_BYTES - 64


def result_too_large(size: int) -> str:
    """The handler's error for a result of `size` bytes of JSON over MAX_RESULT_BYTES."""
    return f"handler returned {size} bytes of data, over the {MAX_RESULT_BYTES} bytes a " \
        "result may hold"


def check_json_value(value: Any) -> None:
    """Refuse JSON data deeper, wider or longer than the caps (pydantic checks types only).

    Read as the frame encoder reads it: a `dict` or `list` subclass (an app's `Counter`, or a
    class whose `items` lies) through the base type's own view of its storage, a `str`, `int`
    or `float` subclass refused (the encoder refuses it too). Stops at the first cap broken, so
    the work is bounded by `MAX_VALUES` whatever the value holds."""
    if _check(value, 0, MAX_VALUES) < 0:
        raise ValueError(f"more than {MAX_VALUES} values")


def _check(value: Any, depth: int, left: int) -> int:
    """Check `value` at nesting `depth` with `left` values still allowed; what is left after."""
    if depth > MAX_NESTING:
        raise ValueError(f"nesting deeper than {MAX_NESTING}")
    left -= 1
    kind = type(value)
    if kind is str:
        if len(value) > MAX_STRING:
            raise ValueError(f"string longer than {MAX_STRING}")
    elif kind is int:
        if int.bit_length(value) > 63:  # |value| >= 2**63: no int64 holds it
            raise ValueError("integer out of range")
    elif kind is float:
        if not math.isfinite(value):
            raise ValueError("NaN and infinities are not JSON data")
    elif value is None or kind is bool:
        pass
    elif isinstance(value, dict):
        if dict.__len__(value) > MAX_ITEMS:
            raise ValueError(f"object with more than {MAX_ITEMS} keys")
        for k, v in dict.items(value):
            if type(k) is not str or len(k) > MAX_NAME:
                raise ValueError("object keys must be short strings")
            left = _check(v, depth + 1, left)
            if left < 0:
                return left
    elif isinstance(value, list):
        if list.__len__(value) > MAX_ITEMS:
            raise ValueError(f"list longer than {MAX_ITEMS}")
        for v in list.__iter__(value):
            left = _check(v, depth + 1, left)
            if left < 0:
                return left
    else:
        raise ValueError(f"not JSON data: {kind.__name__}")
    return left
