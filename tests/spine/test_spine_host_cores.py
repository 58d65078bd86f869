"""Hosts on one machine place their threads on cores of their own (`host.supervise.coreclaim`):
with every host on the first core, two hosts serving four apps made 7 100 reads a second
against 12 000 for one host alone (docs/BENCH.md, "Four apps at once: what a read costs the
host")."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from host.supervise.coreclaim import claim_core
from sandbox.wire import SPIN_MIN_CPUS

USABLE = sorted(os.sched_getaffinity(0))
PLACES = 2 <= len(USABLE) < SPIN_MIN_CPUS  # where a host places its threads on one core

# Claims a core (or starts a host) in a process of its own, prints what it got as one JSON
# line, and holds it until its stdin closes.
CLAIMER = """
import json, sys
from host.supervise.coreclaim import claim_core
claim = claim_core(json.loads(sys.argv[1]))
print(json.dumps(None if claim is None else claim.cpu), flush=True)
sys.stdin.read()
"""
# A host started on its own, as `stockade serve` is: on every core (not on the core of a
# placed host it may be started from, which it would inherit).
HOST = """
import json, os, sys
os.sched_setaffinity(0, json.loads(sys.argv[2]))
from pathlib import Path
from host.home import Home
from host.runtime import Host, HostConfig
with Host(Home(Path(sys.argv[1])).ensure(), config=HostConfig(use_zygote=False)) as h:
    threads = [sorted(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")]
    print(json.dumps({"core": h.affinity.host_core, "threads": threads}), flush=True)
    sys.stdin.read()
"""


def _start(script: str, arg: str) -> tuple[subprocess.Popen[str], object]:
    proc = subprocess.Popen([sys.executable, "-c", script, arg, json.dumps(USABLE)],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def _end(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    proc.wait(30)


def test_a_core_is_claimed_by_one_process_at_a_time_and_freed_when_it_ends() -> None:
    cores = json.dumps([7001, 7002])  # names only: a claim binds no CPU
    first, got_first = _start(CLAIMER, cores)
    second, got_second = _start(CLAIMER, cores)
    third, got_third = _start(CLAIMER, cores)
    try:
        assert (got_first, got_second, got_third) == (7001, 7002, None)
        first.kill()  # however its process ends, the claim goes with it
        first.wait(10)
        again, got_again = _start(CLAIMER, cores)
        _end(again)
        assert got_again == 7001
    finally:
        for proc in (first, second, third):
            proc.kill()
            proc.wait(10)


def test_a_claim_is_shared_within_a_process_and_released_by_its_last_holder() -> None:
    cores = [7011, 7012]
    a = claim_core(cores)
    b = claim_core(cores)
    assert a is not None and b is a and a.cpu == 7011
    a.release()
    probe, got = _start(CLAIMER, json.dumps(cores))
    _end(probe)
    assert got == 7012  # still held by `b`
    b.release()
    probe, got = _start(CLAIMER, json.dumps(cores))
    _end(probe)
    assert got == 7011


# Three hosts, each with a home of its own, started one after another and held together, in a
# network namespace of their own: a claim is an abstract socket, and the namespace keeps out
# the claims of any other host on this machine (the suite's other worker runs hosts too).
THREE_HOSTS = """
import json, subprocess, sys
procs, got = [], []
for name in ("a", "b", "c"):
    p = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2] + "/" + name,
                          sys.argv[3]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    procs.append(p)
    got.append(json.loads(p.stdout.readline()))
for p in procs:
    p.stdin.close()
    p.wait(30)
print(json.dumps(got), flush=True)
"""


def test_hosts_on_one_machine_place_their_threads_on_different_cores(tmp_path: Path) -> None:
    """Three hosts on one machine where hosts place their threads (2 cores): the first two
    take a core each and the third, with none left, keeps its threads on every core."""
    netns = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--net", "--map-root-user"]
    r = subprocess.run([*netns, sys.executable, "-c", THREE_HOSTS, HOST, str(tmp_path),
                        json.dumps(USABLE)], capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, r.stderr
    first, got_second, got_third = json.loads(r.stdout)
    ours = first["core"]
    assert isinstance(got_second, dict) and isinstance(got_third, dict)
    if not PLACES:
        assert ours is None and got_second["core"] is None and got_third["core"] is None
        return
    assert ours in USABLE and got_second["core"] in USABLE
    assert got_second["core"] != ours
    assert got_second["threads"] == [[got_second["core"]]] * len(got_second["threads"])
    assert got_third["core"] is None
    assert got_third["threads"] == [USABLE] * len(got_third["threads"])
