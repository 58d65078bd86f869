"""The text of a workspace's refusal (`error` / `message` of a 4xx body) becomes the message of
the error the host raises: the app sees it, and the host's log lines carry it to the operator's
terminal (the webhook worker's catch-up and drop warnings, the seat read-back's note). A
workspace put terminal escapes, bidi overrides and newlines there, so a log line could clear the
screen or start a line of its own (DESIGN rule 12)."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
from rcfake import FakeWorkspace, fake_client, remote_on

from host.server.errors import ServerError

HOSTILE = "\x1b[2J\x1b]0;owned\x07\u202eTRAP\nstockade: all checks pass"


@pytest.mark.parametrize("status,body", [
    (400, {"success": False, "error": HOSTILE}),
    (400, {"success": False, "error": HOSTILE, "errorType": "error-invalid-room"}),
    (403, {"success": False, "message": HOSTILE}),
    (401, {"status": "error", "message": HOSTILE}),
    (404, {"success": False, "error": HOSTILE}),
])
def test_a_refusals_text_is_inert_in_the_error(status: int, body: dict[str, object]) -> None:
    c = fake_client(FakeWorkspace({"GET rooms.info": lambda q, b: (status, body)}))
    with pytest.raises(ServerError) as err:
        c.call("GET", "rooms.info", query={"roomId": "r1"}, idempotent=True)
    text = err.value.message
    assert "TRAP" in text  # the text is there, to read ...
    for bad in ("\x1b", "\x07", "\u202e", "\n"):  # ... and nothing in it acts
        assert bad not in text, repr(text)


def test_the_seat_read_back_logs_a_refusal_inert(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeWorkspace({"GET users.info": lambda q, b: (400, {"success": False,
                                                                "error": HOSTILE})})
    rs = remote_on(fake, tmp_path)
    rs.owned.record_user("u1", "bob", created_by_app="a", app_id=None, now=0.0)
    with caplog.at_level(logging.INFO, logger="stockade.remote"):
        rs.checkpoint()
    lines = [r.getMessage() for r in caplog.records]
    assert any("TRAP" in line for line in lines), lines
    assert not any("\x1b" in line or "\n" in line for line in lines), lines
