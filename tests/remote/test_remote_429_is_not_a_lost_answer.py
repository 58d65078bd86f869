"""A 429 is Rocket.Chat's rate limiter refusing before the route runs: nothing applied. The
client counted it as an attempt whose answer was lost, so an "already done" refusal on the retry
(`error-room-already-closed`) was taken for this call's own effect."""
from __future__ import annotations

from pathlib import Path

import pytest
from rcfake import FakeWorkspace, remote_on

from host.server.principals import Caller


def test_already_closed_after_a_429_is_not_this_calls_close(tmp_path: Path) -> None:
    """closeByUser answered 429 (the rate limiter: the route never ran), then, on the retry,
    `error-room-already-closed`: someone else closed the room. It was taken for this call's
    own close (the 429 counted as an attempt whose answer was lost): applied, audited as the
    app's. It is a Conflict: this call closed nothing."""
    from host.server.errors import Conflict

    calls = [0]

    def close(q: dict[str, str], b: object) -> tuple[int, dict[str, object]]:
        calls[0] += 1
        if calls[0] == 1:
            return 429, {"success": False, "error": "Too many requests"}
        return 400, {"success": False, "error": "error-room-already-closed"}

    fake = FakeWorkspace({"POST livechat/room.closeByUser": close})
    rs = remote_on(fake, tmp_path)
    with pytest.raises(Conflict):
        rs.livechat_close_room(Caller("a", "in-a", "au"), "r1", op_id="op-c")
    op = rs.owned.op("op-c")
    assert op is not None and op[1] == "failed"
