"""Run by tests/security/test_pid_namespace.py, as root or as an unprivileged user (setpriv).

`python pidns_worker.py attack MODE` plays a host: it starts a victim (another app's child, its
own uid) and a zygote-like fork that confines an app child exactly as `sandbox/zygote.py` does
(`confine.unshare_network`, then `confine.fork_in_own_pid_namespace` unless MODE is "plain",
which is how every child was forked before), with the seccomp filter and Landlock left out in
this fork only, so the kernel's own checks are all that stand in the way. The child attacks the
host's pid and the victim's, and the worker prints each outcome and the host's own limits after.

`python pidns_worker.py probe` prints the layer report of a real zygote child (doctor's probe).

`python pidns_worker.py forkfail` plays a host whose zygote meets a refused fork(2): it lowers
the zygote's RLIMIT_NPROC (which the kernel enforces only on a process that is not root, hence
the unprivileged run) and asks for a child, then raises the limit again and asks once more.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time


def _attack(mode: str) -> dict[str, object]:
    from sandbox import confine, landlock, seccomp

    host = os.getpid()
    victim = os.fork()
    if victim == 0:
        while True:
            time.sleep(1)
    out_r, out_w = os.pipe()
    zygote = os.fork()
    if zygote == 0:  # the zygote: its network namespace (inside a user namespace when not root)
        try:
            netns = confine.unshare_network()
            child = confine.fork_in_own_pid_namespace() if mode == "pidns" else os.fork()
            if child == 0:
                seccomp.install = lambda _pid: None  # type: ignore[assignment]
                landlock.restrict_self = lambda: 6  # type: ignore[assignment]
                in_r, _in_w = os.pipe()
                _err_r, err_w = os.pipe()
                devnull = os.open("/dev/null", os.O_RDWR)
                rep = confine.confine(chan_in=in_r, chan_out=out_w, err_fd=err_w,
                                      devnull_fd=devnull, parent_pid=os.getppid() or zygote_pid(),
                                      limits=confine.Limits(), netns_done=netns)
                results: dict[str, object] = {"pidns": rep.pidns}
                for target, pid in (("host", host), ("other app", victim)):
                    for name, act in (
                        ("prlimit", lambda p=pid: resource.prlimit(
                            p, resource.RLIMIT_NOFILE, (4, 4))),
                        ("setpriority", lambda p=pid: os.setpriority(os.PRIO_PROCESS, p, 19)),
                        ("kill", lambda p=pid: os.kill(p, 0)),  # 0: permission and existence only
                    ):
                        try:
                            act()
                            results[f"{name} {target}"] = "done"
                        except OSError as exc:
                            results[f"{name} {target}"] = f"refused: {exc.strerror}"
                os.write(confine.CHANNEL_OUT_FD, json.dumps(results).encode())
                os._exit(0)
            os.waitpid(child, 0)
        finally:
            os._exit(0)
    os.close(out_w)
    data = b""
    while chunk := os.read(out_r, 4096):
        data += chunk
    os.waitpid(zygote, 0)
    os.kill(victim, signal.SIGKILL)
    os.waitpid(victim, 0)
    res: dict[str, object] = json.loads(data) if data else {"crash": True}
    res["host nofile"] = list(resource.getrlimit(resource.RLIMIT_NOFILE))
    return res


def zygote_pid() -> int:
    """The confining fork's parent as /proc sees it (getppid() is 0 in a new PID namespace)."""
    with open("/proc/self/status", "rb") as f:
        for line in f.read().splitlines():
            if line.startswith(b"PPid:"):
                return int(line.split()[1])
    return 0


def _fork_refused() -> dict[str, object]:
    from host.clock import SystemClock
    from host.keys import tokens
    from host.keys.keyring import Keyring
    from host.supervise.child import ChildLimits
    from host.supervise.spawner import Spawner
    from host.supervise.zygote_client import ZygoteError

    spawner = Spawner(use_zygote=True)
    assert spawner.zygote is not None
    zygote = spawner.zygote.pid
    soft, hard = resource.prlimit(zygote, resource.RLIMIT_NPROC)
    fds_before = len(os.listdir("/proc/self/fd"))
    res: dict[str, object] = {}
    resource.prlimit(zygote, resource.RLIMIT_NPROC, (1, hard))  # this user already runs more
    try:
        spawner.start(ChildLimits())
        res["refused"] = "started anyway"
    except ZygoteError as exc:
        res["refused"] = str(exc)
    res["fds leaked"] = len(os.listdir("/proc/self/fd")) - fds_before
    res["zygote alive"] = os.path.exists(f"/proc/{zygote}")
    resource.prlimit(zygote, resource.RLIMIT_NPROC, (soft, hard))
    ring, clock = Keyring.ephemeral(), SystemClock()
    kid = spawner.start(ChildLimits())
    tok = tokens.issue(ring, clock, app_id="a", install_id="i", session_id=kid.session_id,
                       generation=1, epoch=1, permissions=frozenset(), policy_hash="p")
    layers = kid.handshake(tok, lambda t: tokens.verify(t, ring, clock,
                                                         session_id=kid.session_id),
                           degraded=False)
    res["after"] = {"pidns": layers.pidns, "seccomp": layers.seccomp}
    kid.shutdown(0.5)
    spawner.close()
    return res


def main() -> None:
    if sys.argv[1] == "forkfail":
        print(json.dumps({"euid": os.geteuid(), **_fork_refused()}))
    elif sys.argv[1] == "probe":
        from host.doctor import probe_child_layers

        print(json.dumps({"euid": os.geteuid(), **probe_child_layers(True)}))
    else:
        print(json.dumps({"euid": os.geteuid(), **_attack(sys.argv[2])}))


if __name__ == "__main__":
    main()
