"""What each event amounts to (`EventSpec.amounts_to`) and `policies.events.decide_event`."""
from __future__ import annotations

import tomllib
from dataclasses import replace

import pytest
from polhelp import ALL_PERMS, ROOT, demo_policy, policy

from policies import decide
from policies.events import CONDITIONED, decide_event, event_request
from policies.types import Request
from policies.vocabulary import ACTIONS, EVENTS

PERMIT_ALL = '''
[[rule]]
id = "reads"
effect = "permit"
apps = ["spy"]
actions = ["livechat.read", "messages.read", "messages.send"]
'''


def ev(p, event: str, grants: frozenset[str] = ALL_PERMS, app: str = "spy"):  # type: ignore[no-untyped-def]
    return decide_event(p, grants, app, "inst-1", event)


def test_the_mapping_is_the_documented_one() -> None:
    # Changing it changes what the operator's policy lets through: docs/EVENTS.md, the
    # disclosure and policies/README.md say the same (the first is generated from it).
    assert {n: e.amounts_to for n, e in EVENTS.items()} == {
        "livechat.room_started": ("livechat.get_room", "livechat.get_visitor"),
        "livechat.room_closed": ("livechat.get_room",),
        "livechat.agent_assigned": ("livechat.get_room",),
        "livechat.agent_unassigned": ("livechat.get_room",),
        "livechat.room_transferred": ("livechat.get_room", "livechat.get_department"),
        "livechat.guest_saved": ("livechat.get_visitor",),
        "message.sent": ("messages.list",),
        "message.pre_send": ("messages.list", "messages.send"),
    }


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_every_event_amounts_to_actions_it_can_be_decided_as(name: str) -> None:
    spec = EVENTS[name]
    assert spec.amounts_to, f"{name} names no action: it would never be delivered"
    for action in spec.amounts_to:
        a = ACTIONS[action]
        # its permission is one the event already needs: the mapping never asks for a grant
        # the app was not told about
        assert a.permission in spec.needs, (name, action)
        # decidable without per-event facts, so the host may cache it per event kind
        assert action not in CONDITIONED, (name, action)
        assert not a.write or (spec.pre and action == "messages.send"), (name, action)
    # every visitor-carrying payload amounts to get_visitor
    if any(shape.startswith("Visitor") for _k, shape in spec.payload):
        assert "livechat.get_visitor" in spec.amounts_to


def test_permitted_forbidden_and_default_deny() -> None:
    p = policy(PERMIT_ALL)
    assert all(ev(p, n).allowed for n in EVENTS)
    d = ev(policy(""), "message.sent")  # no rule: default deny, as on the bridge
    assert not d.allowed and d.code == "policy_denied" and "messages.list" in d.message
    forbid = policy(PERMIT_ALL + '''
[[rule]]
id = "no-visitors"
effect = "forbid"
apps = ["spy"]
actions = ["livechat.get_visitor"]
''')
    allowed = {n for n in EVENTS if ev(forbid, n).allowed}
    assert allowed == set(EVENTS) - {"livechat.room_started", "livechat.guest_saved"}
    d = ev(forbid, "livechat.room_started")
    assert d.rules == ("no-visitors",) and "livechat.get_visitor" in d.message
    assert not ev(p, "message.sent", app="other").allowed  # the rule names another app


def test_grants_still_come_first() -> None:
    d = ev(policy(PERMIT_ALL), "message.pre_send", grants=frozenset({"messages.read"}))
    assert not d.allowed and d.code == "permission_denied" and "messages.send" in d.message
    d = ev(policy(PERMIT_ALL), "no.such_event")
    assert not d.allowed and "unknown event" in d.message


def test_the_answer_never_depends_on_the_events_own_values() -> None:
    """Why the host may cache per (revision, install, event kind): a rule's `when` does not
    concern these reads, so the decision with the placeholders is the decision with any real
    room, visitor or department an event carries."""
    p = policy(PERMIT_ALL.replace('actions = [', 'description = "x"\nactions = [') + '''
[rule.when]
roles = ["bot"]
custom_field_keys = ["k"]
''')
    for name, spec in EVENTS.items():
        expected = ev(p, name).allowed
        for action in spec.amounts_to:
            real = {k: f"real-{k}-value" for k in ACTIONS[action].args}
            d = decide(p, ALL_PERMS, Request("spy", "inst-1", action, real, {}, 0.0))
            assert d.allowed == expected, (name, action)
        placeholder = decide(p, ALL_PERMS, event_request("spy", "inst-1", spec.amounts_to[0]))
        assert placeholder.allowed == expected


def test_an_event_amounting_to_a_conditioned_action_fails_closed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule condition an event cannot answer (the target user's creator, here) refuses the
    event, whatever the policy permits; so does an event that names no action."""
    p = policy(PERMIT_ALL + '''
[[rule]]
id = "any"
effect = "permit"
apps = ["spy"]
actions = ["users.update"]
[rule.when]
custom_field_keys = ["k"]
any_user = true
''')
    spec = EVENTS["message.sent"]
    monkeypatch.setitem(EVENTS, "message.sent", replace(spec, amounts_to=(
        "messages.list", "users.set_custom_fields")))
    d = ev(p, "message.sent")
    assert not d.allowed and "fail closed" in d.message
    monkeypatch.setitem(EVENTS, "message.sent", replace(spec, amounts_to=()))
    assert not ev(p, "message.sent").allowed


def test_the_demo_policy_lets_each_example_app_have_its_events() -> None:
    p = demo_policy()
    for manifest in sorted((ROOT / "examples" / "apps").glob("*/app.toml")):
        m = tomllib.loads(manifest.read_text())
        grants = frozenset(x["name"] for x in m.get("permission", []))
        for event in m.get("events", []):
            d = decide_event(p, grants, m["id"], "inst-1", event)
            assert d.allowed, (m["id"], event, d.message)
