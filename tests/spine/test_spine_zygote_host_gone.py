"""A zygote whose host went away before it was ready ends quietly.

Ctrl-C at the CLI while the zygote is still warming up closes the host's end of the control
channel; the zygote's first message then meets a broken pipe. It used to print a traceback on
the shared terminal after the CLI's one-line "interrupted: stopped" (CI caught it once in a
few hundred runs of the Ctrl-C test). Here the race is made certain: the host end is closed
before the zygote even starts.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_zygote_with_no_host_left_exits_without_a_traceback() -> None:
    host_end, zyg_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    host_end.close()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "sandbox.zygote", str(zyg_end.fileno()), str(os.getpid())],
        pass_fds=(zyg_end.fileno(),), env={}, cwd=ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, process_group=0,
    )
    zyg_end.close()
    _out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err.decode(), err.decode()
    assert proc.returncode == 0
