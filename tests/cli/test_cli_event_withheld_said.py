"""`stockade can-i EVENT` and the disclosure say when an event arrives without part of its data.

A message event's room is withheld (None) from an app that may read messages but not the room
(`EventSpec.withheld`). can-i answered a bare "event message.sent allowed as messages.list" and
the disclosure listed `message.sent` with no note, so a reviewer could not tell what the app
will see: nothing said the room is left out, nor why (the grant not asked, or the policy).
Each answer is checked against a real host's payload choice (`EventPolicy.withheld`).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from apphelp import install, write_app, write_policy
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)
from rich.console import Console

from host.apps.disclosure import build_disclosure, render_disclosure
from host.apps.packages import read_package
from host.apps.publisher import SignatureCheck
from host.home import Home
from host.runtime import Host, HostConfig
from policies.loader import load_policy_text

SRC = "from stockade import App\n\nclass TestApp(App):\n    pass\n"
PERMIT = '''
schema = 1
name = "reads"
[[rule]]
id = "reads"
effect = "permit"
apps = ["narrow", "ruled", "agent-sync"]
actions = ["messages.read", "livechat.read"]
'''
FORBID = '''
schema = 1
name = "norooms"
[[rule]]
id = "no-room-reads"
effect = "forbid"
apps = ["ruled", "agent-sync"]
actions = ["livechat.get_room"]
'''


def _hosts_withheld(home: Home) -> dict[str, list[str]]:
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        policy = host.policy.current()
        return {r.app_id: sorted(host.event_policy.withheld(policy, r.install, "message.sent"))
                for r in host._receivers("message.sent")}


def test_can_i_says_an_event_arrives_without_the_room(cli: Run, home: Path) -> None:
    h = Home(home).ensure()
    h.default_policy.unlink(missing_ok=True)
    write_policy(h, "reads", PERMIT)
    write_policy(h, "norooms", FORBID)
    src = h.root / "src"
    install(h, write_app(src, "narrow", ["messages.read"], ["message.sent"], SRC))
    install(h, write_app(src, "ruled", ["messages.read", "livechat.read"], ["message.sent"], SRC))
    hosts = _hosts_withheld(h)
    assert hosts == {"narrow": ["room"], "ruled": ["room"]}
    for app, why in (("narrow", "livechat.read"), ("ruled", "no-room-reads")):
        r = cli("can-i", app, "message.sent", "--json")
        doc = json.loads(r.stdout)
        assert r.exit_code == 0 and doc["allowed"] is True, r.output
        assert doc["withheld"] == hosts[app], doc  # before: no such key
        assert "without room" in doc["message"] and why in doc["message"], doc
        human = cli("can-i", app, "message.sent")
        assert human.stdout.strip() == "yes" and "without room" in human.output, human.output
        listed = cli("can-i", app, "--list", "--json")
        (heard,) = json.loads(listed.stdout)["events"]
        assert heard["withheld"] == hosts[app]


def test_the_disclosure_says_an_event_arrives_without_the_room(tmp_path: Path) -> None:
    pkg = read_package(write_app(tmp_path, "agent-sync", ["messages.read"], ["message.sent"], SRC))
    d = build_disclosure(pkg.manifest, pkg.content_hash, SignatureCheck("unsigned"), None)
    # Not asking livechat.read is reason enough, whatever the policy.
    assert dict(d.events_withheld) == {
        "message.sent": "arrives without room: livechat.get_room needs livechat.read, not asked"}
    buf = io.StringIO()
    render_disclosure(d, Console(file=buf, width=400, force_terminal=False))
    assert "  message.sent arrives without room: livechat.get_room needs livechat.read, not " \
        "asked" in buf.getvalue().splitlines(), buf.getvalue()
    assert d.to_dict()["events_withheld"] == [
        {"event": "message.sent", "why": dict(d.events_withheld)["message.sent"]}]
    pkg = read_package(write_app(tmp_path / "b", "agent-sync", ["messages.read", "livechat.read"],
                                 ["message.sent"], SRC))
    policy = load_policy_text(PERMIT + FORBID[FORBID.index("[[rule"):])
    d = build_disclosure(pkg.manifest, pkg.content_hash, SignatureCheck("unsigned"), policy)
    assert dict(d.events_withheld) == {
        "message.sent": "arrives without room: policy does not permit livechat.get_room"}
    policy = load_policy_text(PERMIT)
    d = build_disclosure(pkg.manifest, pkg.content_hash, SignatureCheck("unsigned"), policy)
    assert d.events_withheld == ()  # permitted: the whole room


def test_can_i_says_an_assignment_arrives_without_the_agents_name(cli: Run, home: Path) -> None:
    h = Home(home).ensure()
    h.default_policy.unlink(missing_ok=True)
    write_policy(h, "reads", PERMIT)
    install(h, write_app(h.root / "src", "narrow", ["livechat.read"],
                         ["livechat.agent_assigned"], SRC))
    doc = json.loads(cli("can-i", "narrow", "livechat.agent_assigned", "--json").stdout)
    assert doc["allowed"] is True
    assert doc["withheld"] == ["agent.name", "agent.type", "agent.username"], doc
    assert "without agent.username, agent.name, agent.type (None)" in doc["message"], doc
    assert "users.read" in doc["message"], doc
