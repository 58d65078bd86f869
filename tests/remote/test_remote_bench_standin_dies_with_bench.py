"""`stockade bench --rocketchat` killed (SIGKILL, a crash: no `finally` runs) takes its stand-in
workspace with it, as the demo's does (`standin --parent-pid`): before, it stayed listening
for good under init."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# The bench's remote measure, made to run long enough to be killed in the middle.
_BENCH = "from host.bench.remote import measure_remote; measure_remote(10**9, 0, bridge=False)"


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _is_standin(pid: int) -> bool:
    try:
        return b"standin" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def test_killed_bench_leaves_no_standin(tmp_path: Path) -> None:
    # Its temporary folder (a SIGKILL runs no `finally`) goes under the test's own, not /tmp.
    p = subprocess.Popen([sys.executable, "-c", _BENCH], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True,
                         env={**os.environ, "TMPDIR": str(tmp_path)})
    standin = 0
    try:
        deadline = time.monotonic() + 60
        while not standin:
            assert time.monotonic() < deadline and p.poll() is None, "no stand-in started"
            standin = next((c for c in _children(p.pid) if _is_standin(c)), 0)
            time.sleep(0.05)
        time.sleep(2.0)  # past its start, into the measure
        os.kill(p.pid, signal.SIGKILL)
        p.wait(30)
        deadline = time.monotonic() + 30
        while not _gone(standin) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(standin), f"the stand-in {standin} outlived the bench"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(30)
        if standin and not _gone(standin):
            os.kill(standin, signal.SIGKILL)
