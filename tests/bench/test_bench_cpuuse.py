"""The load bench's CPU accounting (`host.bench.cpuuse`) against processes whose work is known:
a sandboxed child's CPU is found under its init, a name with parentheses does not shift the
fields, a process that ends stops counting, the machine's busy time grows with the work."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

from host.bench import cpuuse
from host.supervise.affinity import Affinity

# A parent that renames itself with a parenthesis and a space (as /proc shows it, "comm"), then
# forks a child that burns CPU while the parent only waits: the parent's own CPU stays small.
TREE = r'''
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(15, b"app) (x y", 0, 0, 0)  # PR_SET_NAME
pid = os.fork()
if pid == 0:
    end = time.process_time() + 0.4
    while time.process_time() < end:
        pass
    sys.stdout.write("burnt\n"); sys.stdout.flush()
    time.sleep(30)
    os._exit(0)
time.sleep(30)
'''


def test_a_childs_cpu_is_found_under_its_parent_and_counted_once() -> None:
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        machine0 = cpuuse.machine_busy_s()
        before = cpuuse.tree_cpu_s([proc.pid])
        assert proc.stdout.readline() == "burnt\n"
        after = cpuuse.tree_cpu_s([proc.pid])
        assert len(after) == 2 and proc.pid in after  # the parent and its child
        grown = cpuuse.grown_s(before, after)
        assert 0.3 <= grown <= 1.0
        assert (cpuuse.process_cpu_s(proc.pid) or 0.0) < 0.3  # the parent only waited
        # the ticks of `stat` agree, and the name's parenthesis does not shift its fields
        child = next(p for p in after if p != proc.pid)
        assert abs((cpuuse.stat_cpu_s(child) or 0.0) - after[child]) < 0.1
        assert (cpuuse.stat_cpu_s(proc.pid) or 0.0) < 0.3
        assert cpuuse.machine_busy_s() - machine0 >= 0.3
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.05)
    assert cpuuse.process_cpu_s(proc.pid) is None  # reaped: gone from /proc
    assert cpuuse.stat_cpu_s(proc.pid) is None


def test_the_cores_a_rate_shares_are_the_hosts_not_its_placed_threads() -> None:
    """With the host's threads on one core (`Affinity.place_host`) this thread reports one
    CPU; the apps and the front still share every core, and the CPU floors divide by those."""
    usable = sorted(os.sched_getaffinity(0))
    aff = Affinity(host_core=True, cpus=set(usable[:2]))
    host = SimpleNamespace(affinity=aff)
    before = os.sched_getaffinity(0)
    try:
        aff.place_host()
        assert cpuuse.cores(host) == min(len(usable), 2)
        if aff.host_core is not None:
            assert len(os.sched_getaffinity(0)) == 1
    finally:
        aff.release_host()
        os.sched_setaffinity(0, before)
