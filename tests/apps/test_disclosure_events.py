"""The disclosure says which events the policy keeps from the app, as the host decides them."""
from __future__ import annotations

import io

import pytest
from apps_helpers import app_files
from rich.console import Console

from host.apps.disclosure import NOT_PERMITTED, build_disclosure, render_disclosure
from host.apps.packages import package_from_files
from host.apps.publisher import SignatureCheck
from policies.events import decide_event
from policies.loader import load_policy_text
from policies.vocabulary import EVENTS

PERMS = ("livechat.read", "messages.read", "messages.send")
BASE = 'schema = 1\nname = "t"\n'
POLICIES = {
    "none": "",
    "permit": '''
[[rule]]
id = "reads"
effect = "permit"
apps = ["agent-sync"]
actions = ["livechat.read", "messages.read", "messages.send"]
''',
    "some": '''
[[rule]]
id = "reads"
effect = "permit"
apps = ["other", "agent-sync"]
actions = ["livechat.get_room", "messages.list"]
''',
}
FORBID_VISITOR = '''
[[rule]]
id = "no-visitor"
effect = "forbid"
apps = ["agent-sync"]
actions = ["livechat.get_visitor"]
'''


def _disclosure(policy_text: str | None):  # type: ignore[no-untyped-def]
    pkg = package_from_files(app_files(permissions=PERMS, events=sorted(EVENTS)))
    policy = None if policy_text is None else load_policy_text(BASE + policy_text)
    return build_disclosure(pkg.manifest, pkg.content_hash, SignatureCheck("unsigned"), policy)


@pytest.mark.parametrize("text", [*POLICIES.values(), POLICIES["permit"] + FORBID_VISITOR,
                                  POLICIES["some"] + FORBID_VISITOR])
def test_what_the_disclosure_says_is_what_the_host_decides(text: str) -> None:
    d = _disclosure(text)
    policy = load_policy_text(BASE + text)
    refused = {e for e, _why in d.events_refused}
    for event in EVENTS:
        allowed = decide_event(policy, frozenset(PERMS), "agent-sync", "i", event).allowed
        assert allowed == (event not in refused), (event, text)


def test_the_operator_reads_which_events_the_policy_stops() -> None:
    d = _disclosure(POLICIES["permit"] + FORBID_VISITOR)
    assert dict(d.events_refused) == {
        "livechat.room_started": "not delivered: policy does not permit livechat.get_visitor",
        "livechat.guest_saved": "not delivered: policy does not permit livechat.get_visitor"}
    buf = io.StringIO()
    render_disclosure(d, Console(file=buf, width=400, force_terminal=False))
    line = next(ln for ln in buf.getvalue().splitlines() if ln.startswith("Events it handles"))
    assert ("livechat.room_started (not delivered: policy does not permit "
            "livechat.get_visitor)") in line
    assert "message.sent," in line or line.rstrip().endswith("message.sent")
    assert d.to_dict()["events_refused"][0]["event"] == "livechat.guest_saved"
    # no policy: the limits are unknown, and nothing is claimed about events either
    assert _disclosure(None).events_refused == ()
    assert "no event carrying this data" in NOT_PERMITTED
