"""The rig of the event and pre-send hook tests that change what an app may see while its event
or hook waits (`test_presend_queued_reload`, `test_presend_chain_reload`,
`test_ended_app_events`, `test_pump_inbox_reload`, `test_event_policy`,
`test_message_event_room`): on a real host with real confined children, a visitor's message
sent on a thread of its own (its pre-send hooks hold it), the operator's policy files written
and taken as the host's watcher takes them, and what an app printed to its log.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from apphelp import write_policy

from host.apps.installs import InstallRecord
from host.home import Home
from host.runtime import Host

# What the apps must never see: a card number in a visitor's message.
SECRET = "my card is 4111-1111-1111-1111"
# The grants (and permitted actions) of an app that reads messages and answers in hooks.
HOOK_PERMS = ["messages.read", "messages.send", "livechat.read"]


def permit(name: str, apps: Sequence[str], actions: Sequence[str] = HOOK_PERMS) -> str:
    """A policy file (its rule's id is its name) permitting `apps` the `actions`."""
    return (f'\nschema = 1\nname = "{name}"\n[[rule]]\nid = "{name}"\neffect = "permit"\n'
            f"apps = {json.dumps(list(apps))}\nactions = {json.dumps(list(actions))}\n")


def forbid_reads(app: str) -> str:
    """The operator's narrowing: a policy file `nospy` forbidding `app` to list messages (what
    a message event or a pre-send hook amounts to reading)."""
    return ('\nschema = 1\nname = "nospy"\n[[rule]]\nid = "no-reads"\neffect = "forbid"\n'
            f'apps = ["{app}"]\nactions = ["messages.list"]\n')


def policy_taken(h: Host) -> None:
    """The host takes the policies folder as it is now, as its watcher does (a change is used
    once it has held still for a poll), and the set loads."""
    h.policy_watch.poll()
    assert h.policy_watch.poll().refused is None


def reload_policy(h: Host, home: Home, name: str, text: str) -> None:
    """Write the policy file `name` into the serving host's home and have the host take it."""
    write_policy(home, name, text)
    policy_taken(h)


def send_meanwhile(h: Host, visitor_id: str, room_id: str,
                   text: str = SECRET) -> tuple[threading.Thread, list[object]]:
    """The visitor sends `text` on a thread of its own (its pre-send hooks hold it); the list
    gets the message as written once the thread ends."""
    sent: list[object] = []
    t = threading.Thread(target=lambda: sent.append(
        h.server.visitor_send_message(visitor_id, room_id, text)))
    t.start()
    return t, sent


def app_log(home: Home, rec: InstallRecord) -> str:
    """What the app printed (its log; none when it printed nothing, or was uninstalled)."""
    path = home.logs_dir / f"{rec.install_id}.log"
    return path.read_text() if path.exists() else ""
