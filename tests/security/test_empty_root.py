"""Assume escape: a child's file system is an empty root that no longer exists (DESIGN rule 5).

The finding (the confinement review, reproduced): with the seccomp filter left out and every
other layer applied, Landlock at this kernel's ABI 7 refused neither `connect()` to a Unix
socket that has a file path (one bound world-writable under /tmp received a child's datagram:
a channel out of the child with no gate and no audit) nor an `O_PATH` open (`fstat` then told
the size of `/etc/shadow`). Landlock governs opening a file's contents, not naming it. Now each
child, while it may still chroot (before its identity is taken), makes its root a directory of
its own that it has already removed (`sandbox.confine.enter_empty_root`): every absolute path
it names resolves to nothing, so the filter, Landlock and the empty root each stand alone.

Shown with real zygote children (`escapezygote`: the language wall gone; for the attack, the
filter too), their own uids when the test is root, and the kernel's view of their root.
"""
from __future__ import annotations

import errno
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from escapezygote import escaped_spawner, run_escaped, start_app
from test_pid_namespace import UNPRIVILEGED, interpreter  # noqa: F401 - the fixture

from host.supervise.identities import APP_UID_BASE
from host.supervise.spawner import Spawner

APP_UID = APP_UID_BASE + 0xFE80
UNPRIVILEGED_UID = 65534  # the user `UNPRIVILEGED` (setpriv) runs a non-root host's worker as

ATTACK = '''
os, socket = sys.modules["os"], sys.modules["socket"]
out = {{}}
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect({path!r})
    s.send(b"from an app")
    out["unix"] = "sent"
except OSError as exc:
    out["unix"] = exc.errno
try:
    fd = os.open("/etc/shadow", os.O_PATH)
    out["opath"] = "size %d" % os.fstat(fd).st_size
except OSError as exc:
    out["opath"] = exc.errno
try:
    out["root"] = sorted(os.listdir("/"))
except OSError as exc:
    out["root"] = exc.errno
ctypes = sys.modules["ctypes"]
libc = ctypes.CDLL(None, use_errno=True)
out["userns"] = "made" if libc.unshare(0x10000000) == 0 else ctypes.get_errno()
raise Exception("REPORT " + repr(out))
'''


@pytest.fixture
def open_socket() -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket anyone may write, in a folder anyone may search (as the finding's)."""
    folder = tempfile.mkdtemp(prefix="stockade-rootwall-", dir="/tmp")
    os.chmod(folder, 0o755)
    path = f"{folder}/sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o777)
        sock.setblocking(False)
        yield path, sock
    finally:
        sock.close()
        Path(path).unlink(missing_ok=True)
        os.rmdir(folder)


def test_no_path_reaches_past_the_empty_root_without_the_filter(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        open_socket: tuple[str, socket.socket]) -> None:
    path, sock = open_socket
    spawner = escaped_spawner(monkeypatch, tmp_path, filter_off=True)
    kid = None
    try:
        kid = start_app(spawner, APP_UID, degraded=True)
        assert kid.missing_layers == ("seccomp",)  # every other layer, the empty root among them
        res = run_escaped(kid, ATTACK.format(path=path))
        with pytest.raises(BlockingIOError):
            got = sock.recv(64)
            pytest.fail(f"a child reached a Unix socket by its path: {got!r} ({res})")
        # Listing the root it has is Landlock's to refuse (alone, with the filter left out)
        # and a user namespace, where it would hold every capability again, is refused to a
        # process whose root is not its mount namespace's
        assert res == {"unix": errno.ENOENT, "opath": errno.ENOENT, "root": errno.EACCES,
                       "userns": errno.EPERM}, res
    finally:
        if kid is not None:
            kid.shutdown(0.5)
        spawner.close()


@pytest.mark.parametrize("use_zygote", [True, False], ids=["zygote", "spawn"])
def test_the_kernel_shows_each_child_rooted_in_a_removed_directory(use_zygote: bool) -> None:
    """Read from the host's side (/proc/<pid>/root), for both ways a child is made: each child
    its own directory, so no two apps share even an empty one (a non-root host's child owns
    its root, and could change its mode: nobody else sees that one)."""
    spawner = Spawner(use_zygote=use_zygote)
    kids = []
    try:
        for uid in (APP_UID, APP_UID + 1):
            kids.append(start_app(spawner, uid))
        roots = [os.readlink(f"/proc/{kid.app_pid()}/root") for kid in kids]
        assert all(r.endswith(" (deleted)") and "/stockade-root-" in r for r in roots), roots
        assert roots[0] != roots[1]
        assert all(kid.missing_layers == () for kid in kids)
    finally:
        for kid in kids:
            kid.shutdown(0.5)
        spawner.close()


def test_a_non_root_hosts_child_cannot_change_the_hosts_files_without_the_filter(
        request: pytest.FixtureRequest) -> None:
    """Landlock governs no metadata: with the filter left out, a child of a host that is not
    root (same uid as the host, no capability) made a file of the host's `0o666` (a keys file
    so would be anyone's to read). In its empty root the file has no name (`rootwall_worker`)."""
    import json
    import subprocess

    python = request.getfixturevalue("interpreter")  # a Python the unprivileged user may run
    folder = Path(tempfile.mkdtemp(prefix="stockade-rootwall-", dir="/tmp"))
    target = folder / "host-secret"
    try:
        target.write_text("the host's")
        for p, mode in ((folder, 0o755), (target, 0o600)):
            os.chown(p, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
            os.chmod(p, mode)
        proc = subprocess.run(
            [*UNPRIVILEGED, python, str(Path(__file__).with_name("rootwall_worker.py")),
             str(target)], capture_output=True, text=True, timeout=60, cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        assert proc.returncode == 0, proc.stderr[-2000:]
        res = json.loads(proc.stdout)
        assert res == {"chmod": "refused: No such file or directory", "landlock": True,
                       "seccomp": False}, res
        assert target.stat().st_mode & 0o777 == 0o600
    finally:
        target.unlink(missing_ok=True)
        folder.rmdir()
