"""`stockade demo --server rocketchat` tells every event of its story before its summary.

The uninstall story's last conversation starts on the stand-in workspace, whose webhook reaches
the host a moment later: its `livechat.room_started` line came after the summary and the final
"everything behaved" (in every run seen), and the summary's event count was 34 or 35 by that
race."""
from __future__ import annotations

import subprocess

from rchelp import STOCKADE


def test_no_event_is_told_after_the_summary() -> None:
    r = subprocess.run([STOCKADE, "demo", "--server", "rocketchat"], capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stderr.splitlines()
    summary = next(i for i, ln in enumerate(lines) if "Audit and summary" in ln)
    late = [ln for ln in lines[summary:] if ln.lstrip().startswith("event ")]
    assert late == [], late
    uninstall = next(i for i, ln in enumerate(lines) if "Uninstall:" in ln)
    told = [ln for ln in lines[uninstall:summary] if "livechat.room_started" in ln]
    assert told, lines[uninstall:summary]  # the Bot conversation's start, told in its story
