"""Every app's children run as a uid of their own (issue 18, DESIGN rule 5), so the kernel's own
permission checks keep apps apart even where the filter would not.

All children used to run as "nobody": one uid for every app, so an app that escaped
RestrictedPython could prlimit, renice and signal another app's child with the kernel's
blessing, and only the seccomp filter's argument checks stood in the way.

- Through the real host: two installed apps' children run as two different uids from the
  reserved range (read from /proc by the test, not from the child's own report), and a
  restart gives an install the same uid again.
- The kernel layer alone: a process confined exactly as an app child, with the filter and
  Landlock left out in this test's own fork (so only the uid stands in the way), attacks a
  process running as another install's uid, and is refused; the same attacks against a
  process sharing its uid succeed, which is what every pair of apps was before.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import time
from pathlib import Path

import pytest
from apphelp import install, write_app
from sechelp import settle_heap

from host.home import Home
from host.runtime import Host
from host.supervise.identities import APP_UID_BASE, APP_UID_COUNT
from sandbox import confine, landlock, seccomp

SRC = "from stockade import App\n\nclass TestApp(App):\n    def on_livechat_room_started(self, ctx, event):\n        return None\n"


def _uids(pid: int) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line")


def test_each_install_runs_as_its_own_uid_and_keeps_it(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    for app in ("red", "blue"):
        install(home, write_app(tmp_path / "apps", app, ["livechat.read"],
                                ["livechat.room_started"], SRC))

    def running() -> dict[str, int]:
        with Host(home) as h:
            out = {}
            for r in h.runners.values():
                r.submit("livechat.room_started", {}, 5.0).result(15)  # its child is up
                assert r.child is not None
                uids = _uids(r.child.pid)
                assert len(set(uids)) == 1, uids  # real, effective, saved, fs all the same
                out[r.app_id] = uids[0]
            return out

    first = running()
    assert set(first) == {"red", "blue"} and first["red"] != first["blue"]
    for uid in first.values():
        assert APP_UID_BASE <= uid < APP_UID_BASE + APP_UID_COUNT
        assert uid not in (0, os.geteuid(), confine.NOBODY_UID)
    assert running() == first  # a restarted host gives each install the same uid


_libc = ctypes.CDLL(None, use_errno=True)


def _ptrace_attach(pid: int) -> None:
    if _libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _victim(uid: int) -> int:
    """A process running as `uid` that sleeps (another app's child; uid 0: the host)."""
    pid = os.fork()
    if pid == 0:
        try:
            if uid == 0:
                while True:
                    time.sleep(1)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            # Dumpable again (the uid change cleared it), so that only the uid stands between
            # attacker and victim for ptrace and /proc/<pid>/mem; app children are not dumpable
            # either, a second wall this test leaves out.
            _libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
            while True:
                time.sleep(1)
        finally:
            os._exit(0)
    return pid


def _attacker(uid: int, victim: int) -> dict[str, str]:
    """Confine a fork as an app child of `uid` (filter, Landlock and empty root left out, in
    this fork only), attack `victim`, and return each attack's outcome."""
    out_r, out_w = os.pipe()
    in_r, _in_w = os.pipe()
    _err_r, err_w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            settle_heap()
            seccomp.install = lambda _pid: None  # type: ignore[assignment]
            landlock.restrict_self = lambda: 6  # type: ignore[assignment]
            # and the empty root (its ENOENT would answer for the uid at /proc/<pid>/mem)
            confine.enter_empty_root = lambda: True  # type: ignore[assignment]
            devnull = os.open("/dev/null", os.O_RDWR)
            confine.confine(chan_in=in_r, chan_out=out_w, err_fd=err_w, devnull_fd=devnull,
                            parent_pid=parent, limits=confine.Limits(), netns_done=False,
                            uid=uid, gid=uid)
            results = {}
            for name, attack in (
                ("prlimit", lambda: resource.prlimit(victim, resource.RLIMIT_NOFILE, (4, 4))),
                ("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, victim, 19)),
                ("kill", lambda: os.kill(victim, signal.SIGSTOP)),
                ("ptrace", lambda: _ptrace_attach(victim)),
                ("proc mem", lambda: open(f"/proc/{victim}/mem", "rb").close()),
            ):
                try:
                    attack()
                    results[name] = "done"
                except OSError as exc:
                    results[name] = f"refused: {exc.strerror}"
            os.write(confine.CHANNEL_OUT_FD, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(out_w)
    data = b""
    while chunk := os.read(out_r, 4096):
        data += chunk
    os.close(out_r)
    os.waitpid(pid, 0)
    return dict(json.loads(data))


@pytest.mark.parametrize("target", ["another app", "one shared uid (before)", "the host"])
def test_the_kernel_refuses_cross_app_acts(target: str) -> None:
    """(The suite runs as root, as a root host does: only root can give a uid.)"""
    same_uid = target.startswith("one shared")
    a, b = APP_UID_BASE + 9000, APP_UID_BASE + (9000 if same_uid else 9001)
    victim = _victim(0 if target == "the host" else b)
    try:
        results = _attacker(a, victim)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
        os.waitpid(victim, 0)
    if same_uid:
        # the control: with one uid for both, nothing but the filter stood in the way
        assert results == {"prlimit": "done", "setpriority": "done", "kill": "done",
                           "ptrace": "done", "proc mem": "done"}
    else:
        # EPERM from the permission checks; EACCES from opening /proc/<pid>/mem
        assert all(v in ("refused: Operation not permitted", "refused: Permission denied")
                   for v in results.values()), results
        assert results["proc mem"] == "refused: Permission denied"
