"""Where a load step's CPU went, from the kernel's own accounting (/proc), for the capacity
argument of `stockade bench --load`: the host process, the apps' children, the whole machine.

A rate cannot be sustained once the host and its apps together need more CPU per second than
the machine has cores; these figures say how far that bound is, measured, rather than argued.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from host.supervise.procfs import children_of

# Clock ticks per second of /proc's CPU times (USER_HZ).
_TICKS = float(os.sysconf("SC_CLK_TCK"))


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds process `pid` has run (all its threads alive now); None once it is gone.

    From each thread's `schedstat` (nanoseconds on a CPU): a load step's app children use a
    few milliseconds each, below the 10 ms ticks of `stat`, which then read 0. `stat`'s ticks
    when the kernel keeps no schedstat."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total_ns = 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total_ns += int(f.read().split()[0])
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return stat_cpu_s(pid)
        except OSError:
            continue
    return total_ns / 1e9


def stat_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of `pid` from `stat`, in clock ticks; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = text[text.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)


def tree_cpu_s(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds of each of `pids` and of the processes each forked (a sandboxed child is
    its PID namespace's init with the app's process under it), by pid."""
    out: dict[int, float] = {}
    for pid in pids:
        for p in (pid, *children_of(pid)):
            cpu = process_cpu_s(p)
            if cpu is not None:
                out[p] = cpu
    return out


def grown_s(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the processes used between two `tree_cpu_s` readings. A process started in
    between counts from zero; one that ended in between loses its last part (a restart)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def machine_busy_s() -> float:
    """CPU seconds every core of the machine spent busy since boot (not idle, not iowait)."""
    with open("/proc/stat", "rb") as f:
        cols = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    busy = sum(cols[:8]) - cols[3] - cols[4]
    return busy / _TICKS


def cores(host: Any) -> int:
    """The cores a running host's work may spread over (what a rate on this machine has to
    share): the process's when the host was made, not the one core its own threads share
    (`Affinity.place_host`), which this thread, one of them, now reports."""
    return len(host.affinity.everywhere)
