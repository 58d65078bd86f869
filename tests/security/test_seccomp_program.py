"""The prebuilt seccomp program: a child patches in its own pid instead of assembling it.

The zygote assembles the filter once before it forks (`seccomp.prepare`); a child writes its
pid into the three signal rules. A wrong patch would either let the child signal another
process or refuse it its own `abort()`, so both are attacked here in a real filtered process.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import struct

import pytest

from sandbox import confine, seccomp


@pytest.mark.parametrize("pid", [1, 4242, 65534, 1 << 22])
def test_patched_program_equals_a_fresh_assembly(pid: int) -> None:
    fresh = b"".join(struct.pack("HBBI", *insn) for insn in seccomp.build_filter(pid))
    assert seccomp.program(pid) == fresh


def test_patched_program_differs_per_pid() -> None:
    assert seccomp.program(100) != seccomp.program(101)


def test_filtered_child_signals_itself_but_not_its_parent() -> None:
    seccomp.prepare()  # as the zygote does: the child below only patches
    parent = os.getpid()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        res: dict[str, str] = {}
        try:
            os.close(out_r)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(confine.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            seccomp.install(os.getpid())
            for name, target in (("self", os.getpid()), ("parent", parent), ("init", 1)):
                try:
                    os.kill(target, 0)
                    res[name] = "allowed"
                except OSError as exc:
                    res[name] = f"errno {exc.errno}"
            os.write(out_w, json.dumps(res).encode())
        finally:
            os._exit(0)
    os.close(out_w)
    data = os.read(out_r, 4096)
    os.close(out_r)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child ended by signal {os.WTERMSIG(status)}"
    assert json.loads(data) == {"self": "allowed", "parent": f"errno {errno.EPERM}",
                                "init": f"errno {errno.EPERM}"}
