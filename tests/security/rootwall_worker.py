"""Run by `test_empty_root.py` as a user that is not root (setpriv), as a host that is not root
runs its zygote: a user namespace (with the network namespace), then a fork in a PID namespace
of its own, confined by `sandbox.confine.confine` with the seccomp filter left out (in that fork
only). The fork tries to chmod a file its user owns (`argv[1]`) and prints what happened.
"""
from __future__ import annotations

import json
import os
import sys

from sandbox import confine, native, seccomp


def main() -> None:
    target = sys.argv[1]
    if native.libc().unshare(confine.CLONE_NEWUSER | confine.CLONE_NEWNET) != 0:
        print(json.dumps({"error": "no user namespace"}))
        return
    me = os.getpid()
    out_r, out_w = os.pipe()
    pid = confine.fork_in_own_pid_namespace()
    if pid == 0:
        try:
            seccomp.install = lambda _pid: None  # type: ignore[assignment]  # the wall left out
            in_r, _in_w = os.pipe()
            _err_r, err_w = os.pipe()
            devnull = os.open("/dev/null", os.O_RDWR)
            rep = confine.confine(chan_in=in_r, chan_out=out_w, err_fd=err_w,
                                  devnull_fd=devnull, parent_pid=me, limits=confine.Limits(),
                                  netns_done=True, uid=None, gid=None)
            try:
                os.chmod(target, 0o666)
                outcome = "done"
            except OSError as exc:
                outcome = f"refused: {exc.strerror}"
            os.write(confine.CHANNEL_OUT_FD, json.dumps(
                {"chmod": outcome, "landlock": rep.landlock, "seccomp": rep.seccomp}).encode())
        finally:
            os._exit(0)
    os.close(out_w)
    data = os.read(out_r, 4096)
    os.waitpid(pid, 0)
    print(data.decode() or json.dumps({"error": "the fork said nothing"}))


if __name__ == "__main__":
    main()
