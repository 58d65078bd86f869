"""Spawn-fallback entry: a fresh interpreter that confines itself, then serves one app.

`python -I -m sandbox.child IN OUT ERR PARENT_PID MEMORY_MIB CPU_SECONDS MAX_FDS`, started with
an empty environment and only those descriptors. Slower than the zygote (~60 ms) but needs no
long-lived helper process.
"""
from __future__ import annotations

import os
import signal
import sys

from sandbox import confine, runtime


def main() -> None:
    chan_in, chan_out, err, parent, mem, cpu, fds = (int(a) for a in sys.argv[1:8])
    # Ctrl-C reaches the whole foreground process group; the host stops its children itself
    # (as for the zygote's children, `sandbox.zygote`).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    runtime.warm_up()
    devnull = os.open("/dev/null", os.O_RDWR)
    report = confine.confine_early(  # the rest with the host's hello (`runtime._serve`)
        chan_in=chan_in, chan_out=chan_out, err_fd=err, devnull_fd=devnull, parent_pid=parent,
        limits=confine.Limits(memory_mib=mem, cpu_seconds=cpu, max_fds=fds),
        netns_done=False,
    )
    runtime.serve(report)


if __name__ == "__main__":
    main()
