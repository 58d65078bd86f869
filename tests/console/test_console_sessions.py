"""Console sessions end for good: after `IDLE_S` without use, after `MAX_AGE_S` however busy,
when the user is no longer an operator (re-promotion brings none back, even when the session
made no request while its user was out), and when the user's password changes (every session
opened under the old one). Console sign-ins share the REST login's failure count, per account."""
from __future__ import annotations

import httpx
from conhelp import PASSWORD, Served

from host.clock import ManualClock
from host.console.sessions import IDLE_S, MAX_AGE_S, Sessions
from host.server import SYSTEM
from host.server.auth import MAX_FAILURES, set_password


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
    idle = sessions.open("u1", "op", "cred", 0)
    clock.advance(IDLE_S + 1)
    assert sessions.get(idle) is None
    busy = sessions.open("u1", "op", "cred", 0)
    for _ in range(int(MAX_AGE_S // (IDLE_S / 2))):  # used every half idle period
        got = sessions.get(busy)
        assert got is not None
        sessions.used(got)  # as `SignIn.session_of` marks a request it serves
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


def test_an_idle_session_stays_out_after_its_user_is_demoted_and_promoted_again(
        served: Served) -> None:
    """A stolen cookie left unused while its user is demoted and the role given back: before,
    the session was closed only by a request arriving while the user was out, so it came back."""
    thief = _signed_in(served)
    assert _in(thief)
    uid = served.server.users_get_by_username(SYSTEM, "operator")["id"]
    served.server.roles_remove(SYSTEM, uid, "admin")
    served.server.roles_assign(SYSTEM, uid, "admin")  # no request in between
    assert not _in(thief)
    assert _in(_signed_in(served))


def test_an_idle_session_stays_out_after_its_user_is_deactivated_and_reactivated(
        served: Served) -> None:
    thief = _signed_in(served)
    assert _in(thief)
    uid = served.server.users_get_by_username(SYSTEM, "operator")["id"]
    served.server.users_set_active(SYSTEM, uid, False)
    served.server.users_set_active(SYSTEM, uid, True)  # no request in between
    assert not _in(thief)
    assert _in(_signed_in(served))


def test_closing_a_users_sessions_leaves_the_others() -> None:
    sessions = Sessions(ManualClock())
    mine = [sessions.open("u1", "op", "cred", 0) for _ in range(3)]
    theirs = sessions.open("u2", "other", "cred", 0)
    assert sessions.close_user("u1") == 3
    assert all(sessions.get(sid) is None for sid in mine)
    assert sessions.get(theirs) is not None
    assert sessions.close_user("u1") == 0  # idempotent


def test_console_failures_count_against_the_account_whichever_name_is_typed(
        served: Served) -> None:
    """The console counts in the REST login's table: guesses through the user name and the
    e-mail address of one account share its budget, and the right password through the other
    name is refused once it is spent."""
    uid = served.server.users_get_by_username(SYSTEM, "operator")["id"]
    served.server.users_set_profile(SYSTEM, uid, None, "op@example.com")

    def sign_in(who: str, password: str) -> int:
        with httpx.Client(base_url=served.url, timeout=30) as c:
            return c.post("/console/login", data={"username": who, "password": password},
                          headers={"Origin": served.url}).status_code

    for i in range(MAX_FAILURES):
        assert sign_in("operator" if i % 2 else "OP@example.com", f"guess {i}") == 401
    assert sign_in("op@example.com", PASSWORD) == 429
    assert sign_in("operator", PASSWORD) == 429
