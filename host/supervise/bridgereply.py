"""The host's answer to one bridge call from a child: the gate's result or refusal as a Reply,
and that Reply as a frame that always fits.

Split from `host.supervise.child`, whose `Child._answer` and `Child._send_reply` call these on
every bridge call. Nothing the gate raises reaches the child as an object (DESIGN rule 6):
only `{code, message}`, capped; a failure inside the host is logged here and the app sees a
generic refusal. Generic over the child's type (`C`), so this module needs nothing of `child`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from host.errors import GateError
from host.store.sqlite import disk_full
from host.supervise.disk_notice import disk_full_reply
from sandbox import frames
from sandbox.frames import Call, Reply, WireError
from sandbox.wire import FrameError, encode
from sandbox.wirecaps import MAX_FRAME_BYTES, check_json_value

# The child's logger: these lines were always the child's, and operators grep for it.
log = logging.getLogger("stockade.child")

C = TypeVar("C")


def answer(child: C, call: Call, raw: bytes,
           on_call: Callable[[C, str, dict[str, Any]], Any],
           refuse_args: Callable[[C, str, dict[str, Any], str, bytes], Exception] | None, *,
           spin: bool = False) -> Reply:
    """`call`'s Reply; `raw` is its frame as read, what a refusal of its args digests."""
    try:
        try:
            check_json_value(call.args)  # before the gate decides, digests or stores them
        except ValueError as exc:
            if refuse_args is None:
                raise
            raise refuse_args(child, call.action, call.args, str(exc), raw) from None
        result = on_call(child, call.action, call.args)
        return Reply(id=call.id, ok=True, result=result, spin=spin)
    except GateError as exc:
        return Reply(id=call.id, ok=False,
                     error=WireError(code=exc.code, message=exc.message[:2000]))
    except (ValueError, TypeError) as exc:
        return Reply(id=call.id, ok=False,
                     error=WireError(code="invalid_argument", message=str(exc)[:500]))
    except Exception as exc:
        if disk_full(exc):  # the operator's fault, not a bug: no traceback
            return disk_full_reply(call)
        # A host-side failure (a store that cannot write, a bug) refuses the call; the app
        # sees a generic error and the host logs the detail (never sent to the child).
        log.exception("bridge call %s failed inside the host", call.action)
        return Reply(id=call.id, ok=False, error=WireError(
            code="internal", message=f"{call.action}: refused, the host could not complete "
            "it (see the host log)"))


def reply_frame(reply: Reply) -> bytes:
    """`reply` as a frame; one whose JSON outgrows the frame cap (a result under the body cap
    can grow ~6x when escaped) becomes an error reply the app sees, never a send that raises
    and leaves the child waiting on an answer that will not come."""
    try:
        return encode(frames.encode(reply))
    except TypeError:
        # a gate result that is not JSON data is a host bug: refuse, never leave the app
        # waiting (the detail goes to the host log, not to the child)
        log.exception("bridge reply %d is not JSON data", reply.id)
        return encode(frames.encode(Reply(id=reply.id, ok=False, error=WireError(
            code="internal", message="refused: the host could not encode the result"))))
    except FrameError:
        return encode(frames.encode(Reply(id=reply.id, ok=False, error=WireError(
            code="reply_too_large",
            message=f"the result does not fit in one {MAX_FRAME_BYTES}-byte frame",
        ))))
