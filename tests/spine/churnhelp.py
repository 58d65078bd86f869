"""What the churn tests share (tests/spine/test_spine_*_bounded.py and their kin): an app that
answers a room's start, the rule that lets it, and how many descriptors this process holds on a
home's `host.db` (a thread that ends without giving its connections back leaves them open)."""
from __future__ import annotations

import os
import threading

from host.home import Home
from host.runtime import Host
from host.store import pool

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
    """This process's open descriptors on `home`'s `host.db` (and its -wal and -shm), once the
    stores' pools of idle connections are closed. How many a pool holds (up to `POOL_IDLE_MAX`
    a store) depends on how many threads happened to use a store at once, which load changes:
    12 more parked descriptors once failed a bound of 6 under a full suite on two cores. A leak
    is a connection that neither a pool nor a living thread holds, and it stays counted."""
    for store in pool.registered():
        store.close_idle()
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith(str(home.host_db))
        except OSError:
            pass
    return n


def after_an_upkeep_round(host: Host, timeout: float = 30.0) -> None:
    """Return once the host's upkeep thread has finished a whole round (`host.rounds`), every
    chore of it: each host thread that lives as long as the host holds its connections by then.
    The first round comes `CHECKPOINT_INTERVAL_S` after the start; a count taken before it and
    one after differed by its connections (7 descriptors), which no leak made."""
    done = threading.Event()
    publish = host.publish_status  # the round's last step

    def published() -> None:
        publish()
        done.set()

    host.publish_status = published  # type: ignore[method-assign]
    try:
        assert done.wait(timeout), "no upkeep round finished"
    finally:
        del host.publish_status  # the method again
