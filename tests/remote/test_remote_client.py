"""The REST client against a real stand-in process: typed errors, retries only where a repeat is
safe, bounded waits (no timed assertions: each case checks what was tried and what was raised)."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from rchelp import Standin

from host.server.errors import Forbidden, NotFound, Unavailable
from host.server.remote.client import RcClient

_n = itertools.count()


def _client(s: Standin, **kw: object) -> RcClient:
    waits: list[float] = []
    c = RcClient(s.url, s.user_id, s.token, sleep=waits.append, **kw)  # type: ignore[arg-type]
    c.waits = waits  # type: ignore[attr-defined]
    return c


def test_a_read_is_retried_through_429_and_5xx_then_succeeds(clean: Standin) -> None:
    c = _client(clean)
    clean.fault("users.info", "status", 429, times=1)
    clean.fault("users.info", "status", 503, times=1)  # the later rule replaces the first
    got = c.call("GET", "users.info", query={"userId": clean.user_id}, idempotent=True)
    assert got["user"]["_id"] == clean.user_id
    assert c.attempts == 2 and len(c.waits) == 1  # type: ignore[attr-defined]


def test_429_honours_retry_after_within_the_cap(clean: Standin) -> None:
    c = _client(clean)
    clean.fault("users.info", "status", 429, times=2)
    c.call("GET", "users.info", query={"userId": clean.user_id}, idempotent=True)
    assert c.attempts == 3 and c.waits == [0.0, 0.0]  # type: ignore[attr-defined]


def test_retries_are_bounded_and_end_in_a_typed_error(clean: Standin) -> None:
    c = _client(clean, retries=2)
    clean.fault("users.info", "status", 500, times=10)
    with pytest.raises(Unavailable) as err:
        c.call("GET", "users.info", query={"userId": clean.user_id}, idempotent=True)
    assert c.attempts == 3
    assert "answered 500 (3 attempts)" in err.value.message
    assert err.value.code == "timeout" and not err.value.outcome_unknown


def test_a_write_that_is_not_idempotent_is_never_retried_after_it_was_sent(
        clean: Standin) -> None:
    c = _client(clean)
    clean.fault("users.create", "status", 503, times=5)
    with pytest.raises(Unavailable) as err:
        c.call("POST", "users.create", body={"username": f"nr-{next(_n)}", "name": "N"},
               idempotent=False)
    assert c.attempts == 1
    assert err.value.outcome_unknown  # sent, no answer that says it was not applied


def test_a_slow_server_costs_a_bounded_timeout_not_a_hang(clean: Standin) -> None:
    c = _client(clean, timeout_s=0.3, deadline_s=1.0, retries=5)
    clean.fault("users.info", "delay-before", 2.0, times=10)
    with pytest.raises(Unavailable) as err:
        c.call("GET", "users.info", query={"userId": clean.user_id}, idempotent=True)
    assert "did not answer within 0.3 s" in err.value.message
    assert c.attempts < 6  # the call's deadline cut the retries short


def test_refusals_are_typed(clean: Standin) -> None:
    c = _client(clean)
    with pytest.raises(NotFound):
        c.call("GET", "users.info", query={"userId": "nobody-here"}, idempotent=True)
    # ...answered as Rocket.Chat answers it (OpenAPI users.info 400 "User not found": no
    # errorType), so the client's reading of the real answer is what is tested here
    assert clean.admin("GET", "users.info", params={"userId": "nobody-here"}) == {
        "success": False, "error": "User not found."}
    bad = RcClient(clean.url, clean.user_id, "wrong-token")
    with pytest.raises(Forbidden, match="refused the token"):
        bad.call("GET", "me", idempotent=True)
    assert c.attempts == 1 and bad.attempts == 1  # refusals are answers: never retried


def test_server_down_refuses_the_connection_and_a_write_is_known_unapplied(
        tmp_path: Path) -> None:
    s = Standin(tmp_path).start()
    c = _client(s)
    s.stop()
    with pytest.raises(Unavailable) as err:
        c.call("POST", "users.create", body={"username": "never", "name": "N"},
               idempotent=False)
    # The connection was refused: nothing left the host, so even a write may be retried and
    # its outcome is known (nothing was applied).
    assert c.attempts == 3 and not err.value.outcome_unknown
    assert "refused the connection" in err.value.message and "nothing was applied" in \
        err.value.message
    c.close()
    c.close()  # idempotent


def test_a_lost_answer_to_any_write_is_an_unknown_outcome(clean: Standin) -> None:
    """Even a write whose repeat is harmless (retried) may have been applied when no answer
    ever came: the gate must ask, not refund."""
    c = _client(clean, timeout_s=0.3, deadline_s=1.0)
    clean.fault("users.setActiveStatus", "delay-after", 1.0, times=10)
    with pytest.raises(Unavailable) as err:
        c.call("POST", "users.setActiveStatus",
               body={"userId": clean.user_id, "activeStatus": True}, idempotent=True)
    assert err.value.outcome_unknown and "may have been applied" in err.value.message
    assert c.attempts >= 2  # idempotent: retried before giving up
