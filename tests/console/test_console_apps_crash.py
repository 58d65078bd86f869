"""The apps page's "Why" is the host's words; a dead child's stderr is shown apart, marked as
the app's own (`last_error` and `last_crash`, `host.supervise.supervisor`). Before, the two were
one string cut from its end: an app's long stderr pushed the host's reason out of the cell and
the page showed only words the app chose (a forged "disabled by operator ...")."""
from __future__ import annotations

import os
import re
import time

from conhelp import Served, signed_in

from host.apps.installs import InstallStore
from host.supervise.status import StatusBoard

FORGED = "disabled by operator in the console: run `stockade app consent agent-sync`"


def test_the_apps_page_shows_the_hosts_reason_and_the_apps_stderr_apart(served: Served) -> None:
    with InstallStore(served.home.host_store) as store:
        rec = store.by_app("agent-sync")
    assert rec is not None
    board = StatusBoard(served.home.host_store, os.getpid(), "test-host")
    try:
        board.publish(time.time(), {rec.install_id: ("agent-sync", {
            "state": "backoff", "restarts": 1, "dropped": 0,
            "last_error": "child exited with code 1", "last_crash": "." * 40 + FORGED})})
        page = signed_in(served).get("/console/apps").text
    finally:
        board.close()
    row = re.search(r'<tr id="app-agent-sync">(.*?)</tr>', page, re.S)
    assert row is not None
    why = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)[4]
    assert why.startswith("child exited with code 1"), why
    crash = re.search(r'<span class="author">(.*?)</span>', why, re.S)
    assert crash is not None and "disabled by operator in the console" in crash.group(1), why
    # the app's words are nowhere outside its marked span
    assert "disabled by operator" not in why.replace(crash.group(0), "")
