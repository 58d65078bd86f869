"""Every app child is process 1 of a PID namespace of its own (issue 18, DESIGN rule 5), so no
pid it can name reaches another app's child or the host, root host or not.

The issue's finding: a host that is not root (the README's default way to run it) has no uid of
its own to give each app, so its children shared the host's uid, and an escaped child lowered
the running host's RLIMIT_NOFILE with the kernel's blessing (only the filter's argument checks
were left). With a PID namespace per child the kernel answers ESRCH: the host's pid and every
other app's pid do not exist where the child looks.

The attacks run in `pidns_worker.py`, as root and as an unprivileged user (setpriv), with the
filter and Landlock left out in that worker's own fork so the kernel alone decides. The control
("plain fork") forks the child as every child was forked before; it must succeed, which proves
the test fails without the layer.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from host.clock import SystemClock
from host.keys import tokens
from host.keys.keyring import Keyring
from host.supervise.child import REQUIRED_LAYERS, ChildLimits
from host.supervise.spawner import Spawner

WORKER = Path(__file__).with_name("pidns_worker.py")
UNPRIVILEGED = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
ATTACKS = [f"{act} {target}" for target in ("host", "other app")
           for act in ("prlimit", "setpriority", "kill")]


@pytest.fixture(scope="module")
def interpreter() -> Iterator[str]:
    """A Python the unprivileged user may execute: this suite's interpreter may live under a
    directory only root can enter (/root/.pyenv here), as a non-root host's never would. A
    virtual environment on the system's own Python of the same version, seeing this one's
    packages (the same ABI), world-readable."""
    import shutil
    import sysconfig
    import tempfile

    system = Path(f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}")
    if not system.exists():
        yield os.path.abspath(sys.executable)  # nowhere better: the suite's own
        return
    base = Path(tempfile.mkdtemp(prefix="stockade-unpriv-"))  # pytest's tmp is root's alone
    (base / "bin").mkdir()
    (base / "bin" / "python").symlink_to(system)
    (base / "pyvenv.cfg").write_text(f"home = {system.parent}\n"
                                     "include-system-site-packages = false\n")
    site = base / "lib" / system.name / "site-packages"
    site.mkdir(parents=True)
    (site / "suite.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    for p in (base, base / "lib", base / "lib" / system.name, site):
        os.chmod(p, 0o755)
    try:
        yield str(base / "bin" / "python")
    finally:
        shutil.rmtree(base)


def _worker(*args: str, root: bool, python: str = "") -> dict[str, Any]:
    exe = python or os.path.abspath(sys.executable)
    cmd = [*([] if root else UNPRIVILEGED), exe, str(WORKER), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/",
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out: dict[str, Any] = json.loads(proc.stdout)
    assert out["euid"] == (0 if root else 65534)
    return out


@pytest.mark.parametrize("host", ["root host", "unprivileged host"])
def test_an_escaped_child_cannot_name_the_host_or_another_app(host: str, interpreter: str) -> None:
    res = _worker("attack", "pidns", root=host == "root host", python=interpreter)
    assert res["pidns"] is True
    assert {name: res[name] for name in ATTACKS} == dict.fromkeys(
        ATTACKS, "refused: No such process")
    assert res["host nofile"] != [4, 4]


def test_control_without_the_namespace_the_unprivileged_host_is_reachable(
        interpreter: str) -> None:
    """Before: a child forked without a PID namespace of its own, by a host that is not root,
    reaches the host and the other app (and lowers the host's descriptor limit)."""
    res = _worker("attack", "plain", root=False, python=interpreter)
    assert res["pidns"] is False
    assert {name: res[name] for name in ATTACKS} == dict.fromkeys(ATTACKS, "done")
    assert res["host nofile"] == [4, 4]


def test_an_unprivileged_host_gets_every_layer_in_a_real_zygote_child(interpreter: str) -> None:
    """The production path as a non-root host runs it: the zygote makes a user namespace
    (for the network namespace), which is what lets it give each child IPC and PID namespaces."""
    res = _worker("probe", root=False, python=interpreter)
    assert "error" not in res, res
    assert {k: res[k] for k in REQUIRED_LAYERS} == dict.fromkeys(REQUIRED_LAYERS, True)
    # and as the kernel shows the live child to that unprivileged host (doctor's reading)
    assert {name: ok for name, (ok, _detail) in res["kernel"].items()} == {
        "pid namespace": True, "ipc namespace": True, "net namespace": True, "own uid": True,
        "seccomp filter": True, "no_new_privs": True, "empty root": True}


def test_a_refused_fork_is_one_clear_error_and_the_zygote_serves_on(interpreter: str) -> None:
    """fork(2) refused (EAGAIN: the user's process limit) reaches the host as a ZygoteError
    naming the reason (the runner turns it into a backoff and an audited `child_died`), leaks no
    descriptor, and the zygote forks the next child normally once the limit allows it."""
    res = _worker("forkfail", root=False, python=interpreter)
    assert res["refused"] == "zygote could not fork: Resource temporarily unavailable"
    assert res["fds leaked"] == 0 and res["zygote alive"] is True
    assert res["after"] == {"pidns": True, "seccomp": True}


def _ns(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/pid")


@pytest.mark.parametrize("use_zygote", [True, False], ids=["zygote", "spawn fallback"])
def test_real_children_each_have_a_pid_namespace_of_their_own(use_zygote: bool) -> None:
    ring = Keyring.ephemeral()
    clock = SystemClock()
    spawner = Spawner(use_zygote=use_zygote)
    kids = [spawner.start(ChildLimits()) for _ in range(2)]
    try:
        seen = set()
        for kid in kids:
            tok = tokens.issue(ring, clock, app_id="a", install_id="i",
                               session_id=kid.session_id, generation=1, epoch=1,
                               permissions=frozenset(), policy_hash="p")
            def verify(t: str, s: str = kid.session_id) -> None:
                tokens.verify(t, ring, clock, session_id=s)

            layers = kid.handshake(tok, verify, degraded=False)
            assert layers.pidns
            seen.add(_ns(kid.app_pid()))
        # read by the test from /proc, not from the children's reports
        assert len(seen) == 2 and _ns(os.getpid()) not in seen
    finally:
        for kid in kids:
            kid.shutdown(0.5)
        spawner.close()
