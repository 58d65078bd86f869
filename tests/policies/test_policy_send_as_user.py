"""`messages.send_as_user`: an app speaks only as users it created (DESIGN), so `any_user` never
widens it, in the engine as in the server adapters and the linter (STK026 calls the constraint
meaningless for this action). A widened decision once said "allow", charged a quota unit and
was audited as allowed, only for the server to refuse the call."""
from __future__ import annotations

from polhelp import ALL_PERMS, ask, policy

ARGS = {"room_id": "r1", "user_id": "ceo", "text": "wire the money"}
FOREIGN = {"target_created_by_app": None, "target_is_own_app_user": False}
GRANTS = ALL_PERMS | {"messages.send-as-own-users"}
QUOTA = ('[[quota]]\nid="q"\napps=["a1"]\naction="messages.send_as_user"\nlimit=5\n'
         'window="1h"\n')


def _speak(any_user: bool) -> str:
    when = "[rule.when]\nany_user=true\n" if any_user else ""
    return ('[[rule]]\nid="speak"\neffect="permit"\napps=["a1"]\n'
            f'actions=["messages.send_as_user"]\n{when}{QUOTA}')


def test_any_user_never_widens_send_as_user() -> None:
    for any_user in (False, True):
        d = ask(policy(_speak(any_user)), "messages.send_as_user", ARGS, FOREIGN, app="a1",
                grants=GRANTS)
        assert not d.allowed and d.code == "policy_denied", (any_user, d)
        assert "own users only" in d.message
        assert d.quotas == ()  # no unit charged for a call the server would refuse


def test_send_as_user_still_speaks_as_own_users() -> None:
    for any_user in (False, True):
        p = policy(_speak(any_user))
        mine = ask(p, "messages.send_as_user", ARGS, {"target_created_by_app": "a1"}, app="a1",
                   grants=GRANTS)
        assert mine.allowed and mine.rules == ("speak",)
        assert [c.quota_id for c in mine.quotas] == ["q"]
        own = ask(p, "messages.send_as_user", ARGS, {"target_is_own_app_user": True}, app="a1",
                  grants=GRANTS)
        assert own.allowed
        assert not ask(p, "messages.send_as_user", ARGS, {}, app="a1", grants=GRANTS).allowed


def test_lint_and_engine_agree_on_what_any_user_widens() -> None:
    from policies.engine import OWN_USERS_ALWAYS, TARGET_USER_ACTIONS
    from policies.lint import CONCERNS

    # STK026 / STK027 read CONCERNS; the engine reads these: one answer for the operator.
    assert CONCERNS["any_user"] == TARGET_USER_ACTIONS - OWN_USERS_ALWAYS
