"""STK038: a permit over several actions whose constraints restrict some of them only (review
finding: a permit of users.create, users.deactivate and roles.assign with user_types, roles,
username_pattern and any_user reads as "manage crm-bot-N bot accounts", but the engine allows
deactivating any user: none of those constraints concerns users.deactivate)."""
from __future__ import annotations

from polhelp import ask

from policies.loader import load_policy_text, load_sources, parse_text

CRM = '''schema = 1
name = "p"
[[rule]]
id = "crm-bots"
effect = "permit"
apps = ["crm"]
actions = ["users.create", "users.deactivate", "roles.assign"]
[rule.when]
user_types = ["bot"]
roles = ["bot"]
username_pattern = "^crm-bot-[0-9]+$"
any_user = true
[[quota]]
id = "crm-q"
apps = ["crm"]
action = "*"
limit = 100
window = "1h"
'''


def _findings(text: str) -> list[tuple[str, int, int, str]]:
    src, errs = parse_text(text, "p.toml")
    assert not errs
    return [(f.code, f.line, f.column, f.message) for f in load_sources([src]).findings]


def test_each_action_a_constraint_does_not_restrict_is_named() -> None:
    found = [f for f in _findings(CRM) if f[0] == "STK038"]
    by_action = {f[3].split(" not restrict ")[1].split(":")[0]: f for f in found}
    assert sorted(by_action) == ["roles.assign", "users.deactivate"]
    assert "user_types, roles, username_pattern do not" in by_action["users.deactivate"][3]
    assert "user_types, username_pattern do not" in by_action["roles.assign"][3]
    assert by_action["users.deactivate"][1:3] == (7, 28)  # the action's entry
    # What the finding says is what the engine does: any user's deactivation is allowed.
    p = load_policy_text(CRM)
    assert ask(p, "users.deactivate", {"user_id": "human-admin"},
               {"target_created_by_app": None}, app="crm").allowed


def test_one_action_per_rule_or_constraints_that_all_concern_it_are_quiet() -> None:
    single = CRM.replace('["users.create", "users.deactivate", "roles.assign"]',
                         '["users.create"]').replace('roles = ["bot"]\n', "").replace(
                         "any_user = true\n", "")
    assert not [f for f in _findings(single) if f[0] in ("STK038", "STK026")]
    both = CRM.replace('"users.deactivate", ', "").replace("user_types", "roles_x").replace(
        'roles_x = ["bot"]\n', "").replace('username_pattern = "^crm-bot-[0-9]+$"\n', "")
    assert not [f for f in _findings(both) if f[0] == "STK038"], _findings(both)
