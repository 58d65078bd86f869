"""Each app child runs in a memory cgroup of its own, whose limit counts the kernel memory
RLIMIT_AS does not (DESIGN rule 5: never memory outside its own limits).

The finding (the confinement review, reproduced): page tables are kernel memory, outside the
address-space limit. An escaped child (filter left out, every other layer on) writing one page
in each of many one-page mappings placed 1 GiB apart, each page then given back
(MADV_DONTNEED), held two page-table pages per 4 KiB of address space: with `memory_mib=64`
about twice that in page tables (VmPTE), the child alive and well. Now the host makes each child
a cgroup (`host.supervise.memcg`) with a limit of `memory_mib` + `memcg.MARGIN_MIB`, the child
joins it before any app source exists in it (`sandbox.confine.join_memory_cgroup`), and the
kernel's OOM killer ends the hog inside it: a death the host names the app's own.

Run as root on a writable memory hierarchy (this machine and CI have cgroup v1); the last test
plays a host that is not root, where the layer is not required and apps still run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from apphelp import install, write_app
from audithelp import audit_bodies
from escapehost import PRELUDE, escape_apps
from escapezygote import escaped_spawner, run_escaped, start_app
from test_pid_namespace import UNPRIVILEGED, interpreter  # noqa: F401 - the fixture

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise import memcg
from host.supervise.child import REQUIRED_LAYERS, ChildDied, ChildLimits
from host.supervise.identities import APP_UID_BASE
from host.supervise.restarts import counts_against_app
from host.supervise.spawner import Spawner

APP_UID = APP_UID_BASE + 0xFEA0
HOG_MIB = 64  # the hog's memory_mib: small, so the attack ends in well under a second
# How long the test waits for a dead child's exit to be reported (the zygote's reap, the
# host's release). Generous for a loaded machine; no outcome depends on it being short.
EXIT_WAIT_S = 30.0

# One-page mappings 1 GiB apart (each needs a page-table page and a page-middle-directory page
# of its own), each written once and given back: ~8 KiB of page tables per 4 KiB of address
# space, until RLIMIT_AS refuses the next mapping. Reports how many it made.
HOG = '''
ctypes = sys.modules["ctypes"]
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
FIXED_NOREPLACE, PRIVATE_ANON, DONTNEED = 0x100000, 0x22, 4
made = 0
for i in range(60000):
    addr = (1 << 40) + (i << 30)
    p = libc.mmap(addr, 4096, 3, PRIVATE_ANON | FIXED_NOREPLACE, -1, 0)
    if p is None or p != addr:
        break
    ctypes.memset(p, 1, 1)
    libc.madvise(p, 4096, DONTNEED)
    made += 1
raise Exception("REPORT " + repr(made))
'''


def _vm_pte_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmPTE:"):
                return int(line.split()[1])
    return -1


def test_a_page_table_hog_is_killed_by_its_own_memory_limit(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spawner = escaped_spawner(monkeypatch, tmp_path, filter_off=True)
    kid = None
    try:
        kid = start_app(spawner, APP_UID, degraded=True, limits=ChildLimits(memory_mib=HOG_MIB))
        assert kid.missing_layers == ("seccomp",)  # every other layer, the cgroup among them
        pid = kid.app_pid()
        try:
            made = run_escaped(kid, HOG, timeout=20.0)
        except ChildDied:
            pass
        else:
            pytest.fail(f"the hog survived: {made} mappings, VmPTE {_vm_pte_kib(pid)} KiB "
                        f"with memory_mib={HOG_MIB}")
        assert kid.has_exited() or kid._exited.wait(EXIT_WAIT_S)
        assert kid.death_code == "memory_limit", (kid.death_code, kid.death)
        assert "memory limit" in kid.death
        assert counts_against_app(kid.death_code)  # the app's own limit, not the host's
        assert not os.path.exists(str(kid.memory_cgroup))  # removed once reaped
    finally:
        if kid is not None:
            kid.shutdown(0.5)
        spawner.close()


HOG_APP = PRELUDE + """

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
""" + textwrap.indent(HOG.replace('raise Exception("REPORT " + repr(made))', "return made"),
                      " " * 8)


def test_a_real_hosts_app_hogging_page_tables_dies_of_its_own_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a real host (its apps escaped: `escapehost`, the filter on): the death is the
    app's, audited as its memory limit, and counted toward its crash limit."""
    escape_apps(monkeypatch, tmp_path)
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "hog", ["livechat.read"],
                            ["livechat.room_started"], HOG_APP))
    config = HostConfig(watch=False, use_zygote=False, limits=ChildLimits(memory_mib=HOG_MIB))
    with Host(home, config=config) as host:
        (runner,) = host.runners.values()
        with pytest.raises(ChildDied) as died:
            made = runner.submit("livechat.room_started", {}, 20.0).result(60)
            pytest.fail(f"the hog survived: {made} mappings")
        assert died.value.code == "memory_limit", died.value.reason
        status = runner.status()
        assert counts_against_app(died.value.code)  # toward its crash limit
    assert status["last_error"].startswith("child killed: memory limit"), status
    records = [b for b in audit_bodies(home) if b.get("event") == "child_died"]
    assert records and records[-1]["detail"].startswith("child killed: memory limit"), records


@pytest.mark.parametrize("how", ["zygote", "prefork pool", "fresh interpreters"])
def test_each_child_is_in_its_own_cgroup_with_its_limit(how: str) -> None:
    spawner = Spawner(use_zygote=how != "fresh interpreters",
                      prefork=2 if how == "prefork pool" else 0,
                      prefork_limits=ChildLimits(memory_mib=200))
    cgroups = spawner.memory_cgroups
    assert cgroups is not None, spawner.memory_cgroup_reason
    kids = []
    try:
        for uid in (APP_UID + 1, APP_UID + 2):
            kids.append(start_app(spawner, uid, limits=ChildLimits(memory_mib=200)))
        paths = [kid.memory_cgroup for kid in kids]
        assert paths[0] != paths[1]
        for kid, path in zip(kids, paths, strict=True):
            assert path is not None and path.startswith(cgroups.parent + "/")
            assert kid.missing_layers == () and kid.layers is not None
            assert kid.layers.memory_cgroup
            with open(f"/proc/{kid.app_pid()}/cgroup") as f:
                listed = f.read()
            assert f":{cgroups.relative(path)}\n" in listed, listed
            limit = "memory.limit_in_bytes" if cgroups.plan.kind == "v1" else "memory.max"
            assert Path(path, limit).read_text().strip() == str((200 + memcg.MARGIN_MIB) << 20)
            procs = Path(path, "cgroup.procs").read_text().split()
            assert procs == [str(kid.app_pid())]  # the app alone (a spawned stand-in is out)
        kids[0].shutdown(0.5)
        assert kids[0]._exited.wait(EXIT_WAIT_S)
        assert not os.path.exists(str(paths[0]))  # removed once reaped, while the host runs
        assert os.path.isdir(str(paths[1]))
    finally:
        for kid in kids:
            kid.shutdown(0.5)
        spawner.close()
    assert not os.path.exists(cgroups.parent)  # every child's cgroup and the parent removed


def test_a_child_reported_in_no_cgroup_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host checks the kernel's view, not only the child's word: a child the host made a
    cgroup for that is not in it misses the layer, and a host that is not degraded refuses it."""
    spawner = Spawner(use_zygote=True)
    assert spawner.memory_cgroups is not None
    monkeypatch.setattr(spawner.memory_cgroups, "holds", lambda _pid, _path: False)
    try:
        with pytest.raises(Exception, match="memory_cgroup"):
            start_app(spawner, APP_UID + 3)
    finally:
        spawner.close()
    assert "memory_cgroup" not in REQUIRED_LAYERS  # required only where cgroups can be made


def test_the_kernel_holds_each_child_in_its_own_cgroup_and_no_other() -> None:
    """What the handshake's check reads (`holds`: /proc/<pid>/cgroup): a child is in its own
    cgroup and in no other child's; a process that does not exist is in none."""
    spawner = Spawner(use_zygote=True)
    cgroups = spawner.memory_cgroups
    assert cgroups is not None, spawner.memory_cgroup_reason
    kids = []
    try:
        for uid in (APP_UID + 4, APP_UID + 5):
            kids.append(start_app(spawner, uid))
        a, b = kids
        assert a.memory_cgroup is not None and b.memory_cgroup is not None
        assert cgroups.holds(a.app_pid(), a.memory_cgroup)
        assert cgroups.holds(b.app_pid(), b.memory_cgroup)
        assert not cgroups.holds(a.app_pid(), b.memory_cgroup)
        assert not cgroups.holds(b.app_pid(), a.memory_cgroup)
        assert not cgroups.holds(os.getpid(), a.memory_cgroup)
        assert memcg.member_of(-1, cgroups.plan.kind) is None
    finally:
        for kid in kids:
            kid.shutdown(0.5)
        spawner.close()


def test_a_dead_hosts_empty_cgroups_are_swept_and_a_live_ones_kept() -> None:
    plan, why = memcg.detect()
    assert plan is not None, why
    # A host killed hard: its folder and a child's cgroup stay, empty. Its pid is a process
    # that no longer exists (a reaped child of this test), or one whose start time differs.
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = Path(plan.base, f"{memcg.PARENT_PREFIX}{gone.pid}-1-deadbeef")
    reused = Path(plan.base, f"{memcg.PARENT_PREFIX}{os.getpid()}-1-deadbeef")
    for folder in (dead, reused):
        folder.mkdir()
        (folder / "c0123456789abcdef").mkdir()
    live = memcg.MemoryCgroups.start(plan)  # sweeps at start, as every host does
    try:
        assert not dead.exists() and not reused.exists()
        assert Path(live.parent).is_dir()
        # this live host's folder stays (another test's dead host may go: tests run in parallel)
        assert live.parent not in memcg.sweep_stale(plan.base)
        assert Path(live.parent).is_dir()
    finally:
        live.close()
        live.close()  # safe twice
        for folder in (dead, reused):
            if folder.exists():
                for kid in folder.iterdir():
                    if kid.is_dir():
                        kid.rmdir()
                folder.rmdir()
    assert not Path(live.parent).exists()


def test_a_dead_zygotes_childrens_cgroups_go_while_the_host_runs() -> None:
    """The zygote dies (the OOM killer's pick): its children die with it, unreported by it.
    Their cgroups go at the next fork, not only when the host stops."""
    spawner = Spawner(use_zygote=True)
    assert spawner.memory_cgroups is not None and spawner.zygote is not None
    kid = start_app(spawner, APP_UID + 4)
    orphan, pid = kid.memory_cgroup, kid.app_pid()
    assert orphan is not None and os.path.isdir(orphan)
    try:
        os.kill(spawner.zygote.pid, signal.SIGKILL)
        spawner.zygote.proc.wait()
        _wait_gone(pid)  # its child dies by its parent-death signal
        nxt = start_app(spawner, APP_UID + 5)  # through a replacement zygote
        assert not os.path.exists(orphan)
        nxt.shutdown(0.5)
    finally:
        kid.shutdown(0.5)
        spawner.close()
    assert not os.path.exists(spawner.memory_cgroups.parent)


# A host that is not root, as the README runs it: it cannot make cgroups, says why, and still
# runs apps (the layer is not required there).
NON_ROOT_HOST = '''
import json
from host.clock import SystemClock
from host.keys import tokens
from host.keys.keyring import Keyring
from host.supervise.child import ChildLimits
from host.supervise.spawner import Spawner
ring, clock = Keyring.ephemeral(), SystemClock()
spawner = Spawner(use_zygote=True)
kid = spawner.start(ChildLimits())
tok = tokens.issue(ring, clock, app_id="a", install_id="i", session_id=kid.session_id,
                   generation=1, epoch=1, permissions=frozenset(), policy_hash="p")
layers = kid.handshake(tok, lambda t: tokens.verify(t, ring, clock, session_id=kid.session_id),
                       degraded=False)
kid.shutdown(0.5)
spawner.close()
from host.doctor import probe_child_layers
probe = probe_child_layers(True)
print(json.dumps({"reason": spawner.memory_cgroup_reason, "missing": list(kid.missing_layers),
                  "layer": layers.memory_cgroup, "cgroup": kid.memory_cgroup,
                  "doctor": [probe["memory_cgroup"], probe["memory_cgroup_possible"],
                             probe["memory_cgroup_reason"], "memory cgroup" in probe["kernel"]]}))
'''


def test_a_host_that_cannot_make_cgroups_says_why_and_runs_apps(request: pytest.FixtureRequest,
                                                                ) -> None:
    python = request.getfixturevalue("interpreter")
    proc = subprocess.run([*UNPRIVILEGED, python, "-c", NON_ROOT_HOST], capture_output=True,
                          text=True, timeout=60, cwd="/",
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == {
        "reason": "the host is not root: it cannot make cgroups", "missing": [],
        "layer": False, "cgroup": None,
        "doctor": [False, False, "the host is not root: it cannot make cgroups", False]}


def test_the_doctor_reads_a_root_hosts_child_in_its_cgroup() -> None:
    from host.doctor import probe_child_layers

    probe = probe_child_layers(True)
    assert (probe["memory_cgroup"], probe["memory_cgroup_possible"],
            probe["memory_cgroup_reason"]) == (True, True, "")
    ok, detail = probe["kernel"]["memory cgroup"]
    assert ok and "/stockade-" in detail, detail


# A host killed hard once its child runs in its cgroup (it prints the cgroup, then waits).
KILLED_HOST = '''
import time
from host.clock import SystemClock
from host.keys import tokens
from host.keys.keyring import Keyring
from host.supervise.child import ChildLimits
from host.supervise.spawner import Spawner
ring, clock = Keyring.ephemeral(), SystemClock()
spawner = Spawner(use_zygote=True)
kid = spawner.start(ChildLimits())
tok = tokens.issue(ring, clock, app_id="a", install_id="i", session_id=kid.session_id,
                   generation=1, epoch=1, permissions=frozenset(), policy_hash="p")
kid.handshake(tok, lambda t: None, degraded=False)  # in its cgroup (the layer is required)
print(kid.memory_cgroup, kid.app_pid(), flush=True)
time.sleep(600)
'''


def test_a_hard_killed_hosts_cgroups_are_removed_at_the_next_start() -> None:
    proc = subprocess.Popen([os.path.abspath(os.sys.executable), "-c", KILLED_HOST],
                            stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        assert proc.stdout is not None
        path, pid = proc.stdout.readline().split()
        parent = os.path.dirname(path)
        assert os.path.isdir(path)
        assert sum(Path(parent, k).is_dir() for k in os.listdir(parent)) >= 1
    finally:
        proc.kill()
        proc.wait()
    _wait_gone(int(pid))  # its zygote dies with it, the child with the zygote
    spawner = Spawner(use_zygote=False)  # the next start
    try:
        assert not os.path.exists(parent)
    finally:
        spawner.close()


def _wait_gone(pid: int) -> None:
    """Until `pid` is reaped, not only dead: a zombie may still hold its cgroup (a removal
    fails) though `cgroup.procs` no longer lists it. Its new parent reaps it."""
    for _ in range(int(EXIT_WAIT_S / 0.02)):
        if not os.path.exists(f"/proc/{pid}"):
            return
        time.sleep(0.02)
    raise AssertionError(f"{pid} still there after {EXIT_WAIT_S} s")


def _tree(tmp_path: Path, cgroup: str, mount_row: str, subtree: str = "") -> tuple[str, str]:
    """A stand-in /proc/self/cgroup and mountinfo (and a cgroup2 tree under tmp_path/cg)."""
    (tmp_path / "cg" / "deleg" / "host").mkdir(parents=True)
    (tmp_path / "cg" / "deleg" / "cgroup.subtree_control").write_text(subtree)
    (tmp_path / "cgroup").write_text(cgroup)
    (tmp_path / "mountinfo").write_text(
        "23 1 0:21 / /proc rw - proc proc rw\n" + mount_row.format(tmp=tmp_path) + "\n")
    return str(tmp_path / "cgroup"), str(tmp_path / "mountinfo")


def test_detect_finds_a_delegated_v2_subtree_beside_the_host(tmp_path: Path) -> None:
    """cgroup v2: the host sits in a leaf (no internal processes), so its children's cgroups go
    under the parent that delegates `memory` to its subtree."""
    files = _tree(tmp_path, "0::/deleg/host\n",
                  "41 31 0:38 / {tmp}/cg rw,relatime - cgroup2 cgroup2 rw", "cpu memory pids")
    assert memcg.detect(*files) == (
        memcg.Plan("v2", str(tmp_path / "cg" / "deleg"), str(tmp_path / "cg"), "/"), "")


def test_detect_says_why_without_a_delegated_memory_controller(tmp_path: Path) -> None:
    files = _tree(tmp_path, "0::/deleg/host\n",
                  "41 31 0:38 / {tmp}/cg rw,relatime - cgroup2 cgroup2 rw", "cpu pids")
    plan, why = memcg.detect(*files)
    assert plan is None and "no memory controller delegated" in why


def test_detect_v1_under_a_mount_whose_root_is_not_the_hierarchys(tmp_path: Path) -> None:
    """A container's v1 mount shows its own cgroup as the mount's root: the host's folder is
    the mount point plus the path below that root."""
    (tmp_path / "mem" / "sub").mkdir(parents=True)
    files = _tree(tmp_path, "4:memory:/process_api/x/sub\n0::/\n",
                  "35 31 0:32 /process_api/x {tmp}/mem rw,relatime - cgroup cgroup rw,memory")
    plan, why = memcg.detect(*files)
    assert (plan, why) == (memcg.Plan("v1", str(tmp_path / "mem" / "sub"), str(tmp_path / "mem"),
                                      "/process_api/x"), "")
    # and a child's cgroup is named as /proc/<pid>/cgroup names it: from the hierarchy's root
    cgroups = memcg.MemoryCgroups(plan, str(tmp_path / "mem" / "sub" / "stockade-1-2-ab"))
    assert cgroups.relative(cgroups.parent + "/c0123") == "/process_api/x/sub/stockade-1-2-ab/c0123"
