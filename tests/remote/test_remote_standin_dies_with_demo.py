"""`stockade demo --server rocketchat` killed (SIGTERM, SIGKILL, a crash: no `finally` runs) takes
its stand-in workspace with it. The stand-in runs in a session of its own (a Ctrl-C is the
demo's to handle) and had no parent-death signal: each killed demo left a workspace process
listening on loopback for good, an admin's token in its data, its webhook sender retrying."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rchelp import STOCKADE


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too (its parent, init here, has not reaped it yet).
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_demo_leaves_no_standin(sig: signal.Signals, tmp_path: Path) -> None:
    # Its temporary folder (a SIGKILL runs no `finally`) goes under the test's own, not /tmp.
    p = subprocess.Popen([STOCKADE, "demo", "--server", "rocketchat"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True,
                         env={**os.environ, "TMPDIR": str(tmp_path)})
    assert p.stderr is not None
    seen = b""
    standin = 0
    try:
        deadline = time.monotonic() + 60
        while b"stand-in Rocket.Chat workspace" not in seen:
            assert time.monotonic() < deadline and p.poll() is None, seen[-2000:]
            seen += p.stderr.read1(4096)
        found = re.search(rb"home: (\S+)/home ", seen)
        assert found, seen[-2000:]
        standin = json.loads((Path(found.group(1).decode()) / "standin.ready").read_text())["pid"]
        os.kill(p.pid, sig)
        p.wait(30)
        deadline = time.monotonic() + 30  # a loaded machine: the kernel's signal is at once
        while not _gone(standin) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(standin), f"the stand-in {standin} outlived the demo {p.returncode}"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(30)
        if standin and not _gone(standin):
            os.kill(standin, signal.SIGKILL)
