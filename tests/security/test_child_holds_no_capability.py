"""Assume escape: a child of a host that is not root holds no capability (DESIGN rule 5).

The finding: a host that is not root gets its children's namespaces inside a user namespace its
zygote makes (`confine.unshare_network`), and a process that makes a user namespace holds every
capability in it. Its children kept them all (CapEff full): `take_identity` dropped a uid only on
a root host (where the change of uid clears them). The network namespace is the zygote's, one
for every app's child, and it belongs to that user namespace; so with CAP_NET_ADMIN there, an
app's child brings the loopback interface up, and two apps talk over UDP on 127.0.0.1 with no
gate and no audit. Landlock does not cover UDP; only the seccomp filter stood in the way, where
a root host's children (no capability, the interface stays down) have the kernel's refusal too.

Shown with the filter left out and every other layer applied (`netns_worker.py`): from a root
host the kernel refuses (the control), and from a host that is not root (run as an unprivileged
user with setpriv) it must refuse too; before the fix the datagram arrived. And the kernel's own
view of a real zygote child of an unprivileged host: no effective, permitted or inheritable
capability.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WORKER = Path(__file__).with_name("netns_worker.py")
UNPRIVILEGED = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]

PROBE = '''
import json, os, sys
from host.clock import SystemClock
from host.keys import tokens
from host.keys.keyring import Keyring
from host.supervise.child import ChildLimits
from host.supervise.spawner import Spawner

spawner = Spawner(use_zygote=True)
kid = spawner.start(ChildLimits())
ring, clock = Keyring.ephemeral(), SystemClock()
tok = tokens.issue(ring, clock, app_id="a", install_id="i", session_id=kid.session_id,
                   generation=1, epoch=1, permissions=frozenset(), policy_hash="p")
layers = kid.handshake(tok, lambda t: tokens.verify(t, ring, clock, session_id=kid.session_id),
                       degraded=False)
with open(f"/proc/{kid.pid}/status") as f:
    caps = {k: v.strip() for k, v in (line.split(":", 1) for line in f) if k.startswith("Cap")}
print(json.dumps({"euid": os.geteuid(), "caps": caps, "uid_dropped": layers.uid_dropped,
                  "notes": layers.notes}))
kid.shutdown(0.5)
spawner.close()
'''


@pytest.fixture(scope="module")
def interpreter() -> Iterator[str]:
    """A Python the unprivileged user may execute (as `test_pid_namespace.py` makes one)."""
    system = Path(f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}")
    if not system.exists():
        yield os.path.abspath(sys.executable)
        return
    base = Path(tempfile.mkdtemp(prefix="stockade-unpriv-"))
    (base / "bin").mkdir()
    (base / "bin" / "python").symlink_to(system)
    (base / "pyvenv.cfg").write_text(f"home = {system.parent}\n"
                                     "include-system-site-packages = false\n")
    site = base / "lib" / system.name / "site-packages"
    site.mkdir(parents=True)
    (site / "suite.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n"
        f"import sys; sys.path.insert(0, {str(WORKER.parents[2])!r})\n")
    (base / "probe.py").write_text(PROBE)
    for p in (base, base / "lib", base / "lib" / system.name, site):
        os.chmod(p, 0o755)
    os.chmod(base / "probe.py", 0o644)
    try:
        yield str(base / "bin" / "python")
    finally:
        shutil.rmtree(base)


def _run(script: Path, *, root: bool, python: str) -> dict[str, Any]:
    cmd = [*([] if root else UNPRIVILEGED), python, str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/",
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["euid"] == (0 if root else 65534)
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="runs a root host and, with setpriv, another")
@pytest.mark.parametrize("host", ["root host", "unprivileged host"])
def test_two_apps_cannot_talk_through_their_shared_network_namespace(
        host: str, interpreter: str) -> None:
    res = _run(WORKER, root=host == "root host", python=interpreter)
    assert "error" not in res, res
    sender, receiver = res["sender"], res["receiver"]
    assert sender["landlock"] and sender["pidns"], sender  # every other layer in place
    assert sender["lo up"] == receiver["lo up"] == "refused: Operation not permitted", res
    assert "received" not in receiver, f"one app's child reached another's over UDP: {res}"


@pytest.mark.skipif(os.geteuid() != 0, reason="setpriv to an unprivileged host needs root")
def test_a_real_zygote_child_of_an_unprivileged_host_holds_no_capability(
        interpreter: str) -> None:
    res = _run(Path(interpreter).parents[1] / "probe.py", root=False, python=interpreter)
    caps = res["caps"]
    assert {k: int(caps[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")} == {
        "CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}, caps
    assert res["uid_dropped"] is True and res["notes"] == [], res
