"""`stockade can-i` answers for events as the host chooses an event's receivers: the same home
is asked through can-i and through a real `Host` (`Host._receivers`, what every dispatch reads),
and both must agree. Before, can-i knew no events: `--list` was silent on them and an event
name was refused as an unknown action, so a reviewer could not see that a forbid on
`messages.list` also keeps `message.sent` (which carries the text) from the app."""
from __future__ import annotations

import json
from pathlib import Path

from apphelp import install, write_app, write_policy
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

from host.home import Home
from host.runtime import Host, HostConfig

SRC = "from stockade import App\n\nclass TestApp(App):\n    pass\n"
PERMIT = '''
schema = 1
name = "reads"
[[rule]]
id = "reads"
effect = "permit"
apps = ["reader"]
actions = ["messages.read", "livechat.read"]
'''
FORBID = '''
schema = 1
name = "forbid"
[[rule]]
id = "no-list"
effect = "forbid"
apps = ["reader"]
actions = ["messages.list"]
'''
EVENTS = ["message.sent", "livechat.room_started"]


def _hosts_receivers(home: Home) -> dict[str, bool]:
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        return {e: [r.app_id for r in host._receivers(e)] == ["reader"] for e in EVENTS}


def _can_i(cli: Run) -> dict[str, bool]:
    r = cli("can-i", "reader", "--list", "--json")
    assert r.exit_code == 0, r.output
    heard = {e["event"]: e for e in json.loads(r.stdout)["events"]}
    assert sorted(heard) == sorted(EVENTS)
    for e in EVENTS:  # asked one at a time: the same answer, as the exit code too
        one = cli("can-i", "reader", e, "--json")
        assert json.loads(one.stdout)["allowed"] is heard[e]["allowed"]
        assert (one.exit_code == 0) is heard[e]["allowed"], one.output
    return {e: heard[e]["allowed"] for e in EVENTS}


def test_can_i_answers_events_as_the_hosts_receivers(cli: Run, home: Path) -> None:
    h = Home(home).ensure()
    h.default_policy.unlink(missing_ok=True)
    write_policy(h, "reads", PERMIT)
    install(h, write_app(h.root / "src", "reader", ["messages.read", "livechat.read"],
                         EVENTS, SRC))
    assert _can_i(cli) == _hosts_receivers(h) == {e: True for e in EVENTS}

    write_policy(h, "forbid", FORBID)  # message.sent carries what messages.list reads
    expected = {"message.sent": False, "livechat.room_started": True}
    assert _can_i(cli) == _hosts_receivers(h) == expected
    r = cli("can-i", "reader", "message.sent")
    assert r.exit_code == 1 and r.stdout.strip() == "no"
    assert "messages.list" in r.output and "no-list" in r.output, r.output
    listed = cli("can-i", "reader", "--list")
    assert "event message.sent" in listed.output, listed.output


def test_can_i_says_no_for_an_event_the_manifest_does_not_declare(cli: Run, home: Path) -> None:
    h = Home(home).ensure()
    write_policy(h, "reads", PERMIT)
    install(h, write_app(h.root / "src", "reader", ["messages.read", "livechat.read"],
                         ["livechat.room_started"], SRC))
    r = cli("can-i", "reader", "message.sent", "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["allowed"] is False
    assert "does not declare" in doc["message"]
