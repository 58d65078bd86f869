"""Console sessions end for good: after `IDLE_S` without use, after `MAX_AGE_S` however busy,
when the user is no longer an operator (re-promotion brings none back), and when the user's
password changes (every session opened under the old one)."""
from __future__ import annotations

import httpx
from conhelp import PASSWORD, Served

from host.clock import ManualClock
from host.console.sessions import IDLE_S, MAX_AGE_S, Sessions
from host.server import SYSTEM
from host.server.auth import set_password


def _signed_in(s: Served) -> httpx.Client:
    c = httpx.Client(base_url=s.url, timeout=10, follow_redirects=False)
    r = c.post("/console/login", data={"username": "operator", "password": PASSWORD},
               headers={"Origin": s.url})
    assert r.status_code == 303, r.text
    return c


def _in(c: httpx.Client) -> bool:
    r = c.get("/console/apps")
    assert r.status_code in (200, 303)
    return r.status_code == 200


def test_a_session_ends_when_idle_and_at_its_age_however_busy() -> None:
    clock = ManualClock()
    sessions = Sessions(clock)
    idle = sessions.open("u1", "op", "cred")
    clock.advance(IDLE_S + 1)
    assert sessions.get(idle) is None
    busy = sessions.open("u1", "op", "cred")
    for _ in range(int(MAX_AGE_S // (IDLE_S / 2))):  # used every half idle period
        assert sessions.get(busy) is not None
        clock.advance(IDLE_S / 2)
    clock.advance(1)
    assert sessions.get(busy) is None
    assert MAX_AGE_S > IDLE_S


def test_a_demoted_operators_session_is_gone_for_good(served: Served) -> None:
    thief = _signed_in(served)  # someone holds the operator's console cookie
    assert _in(thief)
    uid = served.server.users_get_by_username(SYSTEM, "operator")["id"]
    served.server.roles_remove(SYSTEM, uid, "admin")
    assert not _in(thief)
    served.server.roles_assign(SYSTEM, uid, "admin")
    assert not _in(thief)  # re-promotion revives no old session
    assert _in(_signed_in(served))  # a new sign-in works


def test_a_password_change_ends_every_session_opened_under_the_old_one(served: Served) -> None:
    first, second = _signed_in(served), _signed_in(served)
    assert _in(first) and _in(second)
    uid = served.server.users_get_by_username(SYSTEM, "operator")["id"]
    set_password(served.server.db, uid, "a brand new password")
    assert not _in(first) and not _in(second)
    # the same password set again is a new record too (a fresh salt): still out
    set_password(served.server.db, uid, PASSWORD)
    assert not _in(first)
    assert _in(_signed_in(served))
