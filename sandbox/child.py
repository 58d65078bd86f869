"""Spawn-fallback entry: a fresh interpreter that confines itself, then serves one app.

`python -I -m sandbox.child IN OUT ERR PARENT_PID MEMORY_MIB CPU_SECONDS MAX_FDS [CGROUP]`, started
with an empty environment and only those descriptors (CGROUP: the memory cgroup the app child
joins first, `host.supervise.memcg`). Slower than the zygote (~60 ms) but needs no
long-lived helper process.

The process the host started cannot enter a PID namespace of its own (only its children can), so
it forks the app child into one (`confine.fork_in_own_pid_namespace`) and stays behind as a
stand-in that holds nothing: it closes the channel, waits, and leaves as the child left, so the
host reads the child's exit status from it. It dies with the host; the child dies with it.
"""
from __future__ import annotations

import os
import resource
import signal
import sys
from typing import NoReturn

from sandbox import confine, native, runtime


def main() -> None:
    chan_in, chan_out, err, parent, mem, cpu, fds = (int(a) for a in sys.argv[1:8])
    cgroup = sys.argv[8] if len(sys.argv) > 8 else ""  # the app child's, joined in confine
    # Ctrl-C reaches the whole foreground process group; the host stops its children itself
    # (as for the zygote's children, `sandbox.zygote`).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    runtime.warm_up()
    native.libc().prctl(confine.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(71)  # the host is gone already
    # The network namespace first: on a non-root host it comes inside a user namespace, which
    # is what allows the PID namespace next.
    netns = confine.unshare_network()
    me = os.getpid()
    pid = confine.fork_in_own_pid_namespace()
    if pid > 0:
        _stand_in(pid, (chan_in, chan_out, err))
    # pid < 0: the kernel refused; this process serves as the child and reports no namespace
    devnull = os.open("/dev/null", os.O_RDWR)
    report = confine.confine_early(  # the rest with the host's hello (`runtime._serve`)
        chan_in=chan_in, chan_out=chan_out, err_fd=err, devnull_fd=devnull,
        parent_pid=me if pid == 0 else parent,
        limits=confine.Limits(memory_mib=mem, cpu_seconds=cpu, max_fds=fds,
                              memory_cgroup=cgroup),
        netns_done=netns,
    )
    runtime.serve(report)


def _stand_in(pid: int, fds: tuple[int, ...]) -> NoReturn:
    """Wait for the app child and leave as it left (module docstring)."""
    for fd in fds:
        os.close(fd)  # the host must see the channel close when the child ends
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig != signal.SIGKILL:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU/SIGSEGV would dump
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 70)


if __name__ == "__main__":
    main()
