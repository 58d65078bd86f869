"""Two more apps for `stockade bench --load` and `--soak`, beside the four examples: issue 26's
workspace ran six. They are the kind an operator adds next to the examples, and load the host
the way such apps do (reads on every event, a private store write):

- `bench-archiver` (on `livechat.room_closed`): reads the room, its visitor and its messages,
  and keeps a one-line summary per room in its private store;
- `bench-watcher` (on `livechat.room_started` and `message.sent`): reads the room on each start
  and keeps each room's last message id in its private store (one write per message: a room
  sees five or so messages, so this app's calls grow fastest with the rate).

Their policy is written into the bench's own home (`extra.toml`), with no quota of its own: the
shipped baseline's rate and persistence quotas apply, lifted by `soak.lift_rates`.
"""
from __future__ import annotations

from pathlib import Path

from host.apps.installs import InstallRecord
from host.bench.apps import install_app
from host.home import Home

ARCHIVER = "bench-archiver"
WATCHER = "bench-watcher"

_ARCHIVER_SRC = '''\
from stockade import App


class Bench(App):
    def on_livechat_room_closed(self, ctx, event):
        room = ctx.livechat.get_room(event["room"]["id"])
        visitor = ctx.livechat.get_visitor(room["visitor_id"])
        messages = ctx.messages.list(room["id"], limit=50)
        ctx.store.put("room:" + room["id"], {"visitor": visitor["name"],
                                             "messages": len(messages)})
        return len(messages)
'''

_WATCHER_SRC = '''\
from stockade import App


class Bench(App):
    def on_livechat_room_started(self, ctx, event):
        room = ctx.livechat.get_room(event["room"]["id"])
        return room["department_id"]

    def on_message_sent(self, ctx, event):
        ctx.store.put("last:" + event["room"]["id"], event["message"]["id"])
        return event["message"]["id"]
'''

POLICY = f'''schema = 1
name = "extra"
description = "stockade bench: two apps beside the examples (host/bench/extra_apps.py)."

[[rule]]
id = "extra-read"
effect = "permit"
apps = ["{ARCHIVER}", "{WATCHER}"]
actions = ["livechat.read", "messages.read"]
'''


def install_extra_apps(home: Home, src_root: Path) -> tuple[InstallRecord, InstallRecord]:
    """Write their policy into `home` and install both (unsigned, consented to what they ask).
    """
    (home.policies_dir / "extra.toml").write_text(POLICY, encoding="utf-8")
    perms = ("livechat.read", "messages.read", "persistence")
    return (install_app(home, src_root, ARCHIVER, _ARCHIVER_SRC, perms,
                        ("livechat.room_closed",)),
            install_app(home, src_root, WATCHER, _WATCHER_SRC, perms,
                        ("livechat.room_started", "message.sent")))
