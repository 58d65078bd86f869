"""A host killed mid-write on a Rocket.Chat workspace, started again while the workspace
answers but cannot say whether that write applied (its read-back fails with 503): the host
serves, the unsettled write keeps its units reserved (the safe side) and is settled at a later
start. Before, `serve` refused to start with "error: unexpected Unavailable ... please report
it" for as long as the read-back failed.

The lease settles every unfinished call as a host starts alone (`host.ledger.lease`), asking the
workspace whether each was applied; an answer it could not get raised out of the settlement, out
of the lease and out of `Host.start`, though nothing else needed that write.
"""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from crashhelp import crash_mid_create, rows
from rchelp import STOCKADE


def test_a_host_killed_mid_write_starts_again_while_the_workspace_is_down(
        tmp_path: Path) -> None:
    crashed = crash_mid_create(tmp_path, applied=False)  # decision durable, no outcome
    s, home, port = crashed.standin, crashed.home, crashed.port
    s.clear_faults()
    # The workspace answers, but cannot read its users back (503) for now.
    s.fault("users.info", "status", 503, times=1000)
    again = subprocess.Popen([STOCKADE, "--home", str(home.root), "serve", "--port", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        said = ""
        assert again.stderr is not None
        for line in again.stderr:
            said += line
            if "webhook receiver:" in line:
                break
        assert again.poll() is None, f"serve did not start (exit {again.wait(10)}): {said}"
        # Kept pending, its units reserved, for a start that can ask the workspace.
        assert len(rows(home, "SELECT op_id FROM audit_intents")) == 1
    finally:
        if again.poll() is None:
            again.send_signal(signal.SIGINT)
            again.wait(20)
        s.stop()
