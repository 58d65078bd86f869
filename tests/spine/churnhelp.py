"""What the churn tests share (tests/spine/test_spine_*_bounded.py and their kin): an app that
answers a room's start, the rule that lets it, and how many descriptors this process holds on a
home's `host.db` (a thread that ends without giving its connections back leaves them open)."""
from __future__ import annotations

import os

from host.home import Home

OK_APP = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"
'''
CHURN_POLICY = '''
schema = 1
name = "spine"
[[rule]]
id = "spine-read"
effect = "permit"
apps = ["churn"]
actions = ["livechat.read"]
'''


def host_db_fds(home: Home) -> int:
    """This process's open descriptors on `home`'s `host.db` (and its -wal and -shm)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith(str(home.host_db))
        except OSError:
            pass
    return n
