"""A child given an identity must be seen by the kernel to run as it, whatever it reports.

`Child.handshake` reads the app process's /proc status (`procfs.runs_as`) after the child's
report: a child that says `uid_dropped` while the kernel shows another uid (a bug in the
child's identity step, a report forged by a runtime that was not ours) is refused as a missing
layer. Attacked with a fake child that reports every layer while it runs as root, and with
real processes whose ids differ in one place only.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from sechelp import fake, fakes_fixture  # noqa: F401  (the fixture)
from test_protocol_attacks import LAYERS

from host.supervise.child import Child, LayerMissing
from host.supervise.procfs import runs_as

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="changing ids needs root")


@root_only
def test_a_child_reporting_its_uid_dropped_while_it_runs_as_root_is_refused(
        fakes: list[Child]) -> None:
    child = fake(fakes, [["recv"], ["send", {"t": "hello", "v": 1, "token": "tok",
                                              "layers": LAYERS}], ["sleep", 30]])
    with pytest.raises(LayerMissing, match="uid_dropped"):
        child.handshake("tok", lambda _t: None, degraded=False, uid=NOBODY)
    assert child.dead


def _sleeper(ids: str) -> subprocess.Popen[bytes]:
    """A process that sets its ids with `ids` (Python statements on `os`), then says so."""
    code = f"import os, sys, time\n{ids}\nsys.stdout.write('set\\n'); sys.stdout.flush()\n" \
           "time.sleep(30)\n"
    proc = subprocess.Popen([sys.executable, "-I", "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"set\n"
    return proc


@root_only
@pytest.mark.parametrize(("ids", "seen"), [
    ("os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)",
     True),
    # one of the four ids left behind: real uid, saved uid, effective gid, saved gid
    ("os.setresgid(65534, 65534, 65534); os.setresuid(0, 65534, 65534)", False),
    ("os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 0)", False),
    ("os.setresgid(65534, 0, 65534); os.setresuid(65534, 65534, 65534)", False),
    ("os.setresgid(65534, 65534, 0); os.setresuid(65534, 65534, 65534)", False),
    ("pass", False),
])
def test_runs_as_needs_every_uid_and_gid(ids: str, seen: bool) -> None:
    proc = _sleeper(ids)
    try:
        assert runs_as(proc.pid, NOBODY) is seen
        assert runs_as(proc.pid, 0) is (ids == "pass")
    finally:
        proc.kill()
        proc.wait()


def test_runs_as_is_false_for_a_process_that_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-I", "-c", "pass"])
    proc.wait()
    time.sleep(0.05)
    assert not runs_as(proc.pid, os.geteuid())
    assert not runs_as(-1, os.geteuid())
