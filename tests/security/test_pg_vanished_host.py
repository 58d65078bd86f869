"""A host whose machine vanishes (its network gone, nothing closed) loses its lease on the shared
store within the keepalives' bound, and a survivor settles its calls.

The lease connection set TCP keepalives on the host's side only (libpq's `keepalives_*`): they
let the host notice a dead server, not the server notice a dead host. The server kept the
vanished host's lease session, and its lease lock, for as long as its own kernel's keepalive
allowed (7200 s idle here): no survivor could take the lock, so the dead host's reserved units
and seats stayed reserved for over two hours, where docs/SCALE.md promised about 25 s. The
host now asks the server for the same keepalives on each of its sessions
(`tcp_keepalives_*`).

The vanished machine is a network namespace of its own, joined to the store by a veth pair
whose link the test takes down. Needs root (namespaces, links); skipped elsewhere.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from gatehelp import add_seat_ceiling, install_fuzz_app
from pghelp import Cluster, _bin, until

from host.home import Home
from host.migrate import migrate
from host.runtime import Host, HostConfig

WORKER = Path(__file__).with_name("pg_host_worker.py")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2 (a network namespace)")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def machine() -> Iterator[tuple[str, str, str]]:
    """A network namespace (the other machine) and the store's address as it sees it: (the
    namespace, the root side's link, the store's address on it)."""
    tag = secrets.token_hex(3)
    ns, outer, inner = f"stk-vanish-{tag}", f"stkv{tag}a", f"stkv{tag}b"
    octet = int(tag[:2], 16) % 250 + 2
    near, far = f"10.213.{octet}.1", f"10.213.{octet}.2"
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", ns)
        _ip("addr", "add", f"{near}/30", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("-n", ns, "addr", "add", f"{far}/30", "dev", inner)
        _ip("-n", ns, "link", "set", inner, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        yield ns, outer, near
    finally:
        subprocess.run(["ip", "link", "del", outer], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@pytest.fixture
def private(machine: tuple[str, str, str]) -> Iterator[Cluster]:
    """A private cluster that also listens on the link to the other machine."""
    near = machine[2]
    cl = Cluster()
    try:
        with open(cl.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {near.rsplit('.', 1)[0]}.0/24 trust\n")
        cl._run(_bin("pg_ctl"), "-D", str(cl.data), "-m", "fast", "-w", "stop")
        cl._run(_bin("pg_ctl"), "-D", str(cl.data), "-w", "-l", str(cl.root / "log"),
                "-o", f"-p {cl.port} -k {cl.root} -c listen_addresses=127.0.0.1,{near} "
                      "-c fsync=off -c max_connections=200", "start")
        yield cl
    finally:
        cl.stop()


def _pending(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as c:
        return [str(r[0]) for r in c.execute("SELECT host_id FROM audit_intents")]


def test_a_vanished_hosts_calls_are_settled_within_the_keepalive_bound(
        tmp_path: Path, machine: tuple[str, str, str], private: Cluster) -> None:
    ns, outer, near = machine
    url = private.fresh_url()
    far_url = url.replace("127.0.0.1", near)
    migrate(url)
    first = Home(tmp_path / "a", url).ensure()
    install_fuzz_app(first)
    add_seat_ceiling(first)
    other = tmp_path / "b"
    for part in ("keys", "trust", "policies", "packages"):
        shutil.copytree(first.root / part, other / part)
    os.chmod(other, 0o700)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, str(WORKER), str(other), far_url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    survivor: Host | None = None
    try:
        assert proc.stdout is not None and proc.stdin is not None
        ready = proc.stdout.readline().split()
        assert ready[:1] == ["READY"], ready
        vanished_id = ready[1]
        proc.stdin.write("hang\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "hanging"
        until(lambda: _pending(url) == [vanished_id], "the create's intent", 20.0)
        survivor = Host(first, config=HostConfig(watch=False, use_zygote=False)).start()
        # The machine vanishes: its link goes down and it stops answering anything.
        _ip("link", "set", outer, "down")
        os.kill(proc.pid, signal.SIGSTOP)
        started = time.monotonic()
        # Keepalives (10 s idle, then 3 probes 5 s apart: 25 s) plus the survivor's sweep.
        until(lambda: _pending(url) == [], "the survivor to settle the vanished host", 60.0)
        assert time.monotonic() - started < 60.0
    finally:
        if survivor is not None:
            survivor.stop()
        proc.kill()
        proc.wait(30)
