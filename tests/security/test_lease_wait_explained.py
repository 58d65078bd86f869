"""A `stockade serve` that cannot take its lease on the home says why, while it waits and when
it gives up, naming the process that holds the home.

A starting host waits (`LEASE_WAIT_S`, 30 s) while another process holds `HOME/host.lock`
exclusively: a host settling unfinished calls as it starts (stopped there by SIGSTOP, or slow
asking a workspace), or `stockade store migrate` moving server.db. Before, `serve` said nothing
for the whole wait, then "error: unexpected LeaseError ... please report it" (a bug report for
an operator's situation) with a message that blamed "another host ... settling" and named no
process.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from host.home import Home

REPO = Path(__file__).resolve().parents[2]
# The operator's `serve`, with the lease's wait cut from 30 s to 1 s by the test's own wrapper.
SERVE = ("import host.ledger.lease as lease; lease.HomeLease.__init__.__kwdefaults__['wait_s'] "
         "= 1.0; from host.cli.main import main; main()")
# A host stopped (SIGSTOP) in the middle of settling, under the exclusive lock.
SETTLING = ("import sys, time; from pathlib import Path; from host.ledger.lease import HomeLease; "
            "HomeLease(Path(sys.argv[1])).acquire(lambda: (print('settling', flush=True), "
            "time.sleep(60)))")


def test_a_serve_kept_waiting_says_so_and_names_the_holder(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    holder = subprocess.Popen([sys.executable, "-c", SETTLING, str(home.lease_path)],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "settling\n"
        os.kill(holder.pid, signal.SIGSTOP)
        done = subprocess.run(
            [sys.executable, "-c", SERVE, "--home", str(home.root), "serve", "--port", "0"],
            capture_output=True, text=True, cwd=REPO, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    err = done.stderr
    assert done.returncode == 1, err
    assert "unexpected" not in err and "please report" not in err and "Traceback" not in err
    waiting, _, rest = err.partition("error: ")
    assert f"held exclusively by process {holder.pid}" in waiting and "waiting up to 1 s" in waiting
    assert f"process {holder.pid}" in rest and "nothing was started or changed" in rest
    assert "hint: " in rest
