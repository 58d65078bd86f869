"""The console's apps page shows a host's published status only while it is fresh, as `app
list` and `doctor` do (`host.supervise.status.is_fresh`). A host killed with SIGKILL (or whose
machine lost power) leaves its last rows in `runner_status`; the page showed them as the apps'
state for good ("idle", its restarts and drops), though no host ran the apps any more.
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conhelp import Served, signed_in

from host.supervise import status

WORKER = Path(__file__).resolve().parents[1] / "statushost.py"


def _state(served: Served) -> str:
    page = signed_in(served).get("/console/apps").text
    row = re.search(r'<tr id="app-agent-sync">(.*?)</tr>', page, re.S)
    assert row is not None
    return re.sub(r"<[^>]+>", "", re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)[3])


def test_a_killed_hosts_last_status_is_not_shown_as_live(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    # A row is fresh for one publish interval here, not 3 (the test waits less). The worker
    # publishes every 0.2 s until killed, so its rows are fresh while it lives even when the
    # page is rendered a second late on a loaded machine (half an interval was raced in CI).
    monkeypatch.setattr(status, "STALE_AFTER_INTERVALS", 1.0)
    host = subprocess.Popen([sys.executable, str(WORKER), str(served.home.root), "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None and host.stdout.readline() == "up\n"
        live = _state(served)
        assert live != "not serving", live
    finally:
        host.send_signal(signal.SIGKILL)
        host.wait()
    time.sleep(status.STALE_AFTER_INTERVALS * status.PUBLISH_INTERVAL_S + 0.2)
    assert _state(served).strip() == "not serving"
