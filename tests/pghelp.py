"""A real PostgreSQL server for the tests: Debian's `postgresql` binaries, started once per test
session in a scratch directory on a loopback port, stopped at exit.

The README's test command installs the package. PostgreSQL refuses to run as root, so when the
tests run as root the cluster belongs to the package's `postgres` user. Each test gets a schema
of its own (`fresh_url`), so tests never see each other's tables and need no clean-up.
"""
from __future__ import annotations

import atexit
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest


def _bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql); the "
                           "README's test command installs it")
    return str(found[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One throw-away PostgreSQL cluster (trust authentication, loopback only)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="stockade-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.root / "log"),
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off -c max_connections=200", "start")
        atexit.register(self.stop)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as, *argv], check=True, capture_output=True, timeout=120)

    def restart(self, down_s: float) -> None:
        """Stop the server (fast: every session ended), wait `down_s`, start it again."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        time.sleep(down_s)
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.root / "log"),
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off -c max_connections=200", "start")

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*self._as, _bin("pg_ctl"), "-D", str(self.data), "-m", "immediate",
                            "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def fresh_url(self) -> str:
        """A URL whose connections use a new, empty schema of their own."""
        schema = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {schema}".encode())
        return f"{self.url}?options=-csearch_path%3D{schema}"


_cluster: Cluster | None = None


def cluster() -> Cluster:
    """The session's cluster, started on first use."""
    global _cluster
    if _cluster is None:
        _cluster = Cluster()
    return _cluster


def stockade(home: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `stockade` CLI on `home` and its shared store, in a process of its own."""
    return subprocess.run([sys.executable, "-c", "from host.cli.main import main; main()",
                           "--home", str(home.root), "--store", str(home.store_url), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def until(pred: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Wait for `pred` (a serving host's upkeep polls every 2 s), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(name="private")
def private_fixture() -> Iterator[Cluster]:
    """A cluster of the test's own, for a test that restarts or stops its server."""
    cl = Cluster()
    try:
        yield cl
    finally:
        cl.stop()


def admits(host: Any) -> bool:
    """Whether `host` admits calls (its lease beaten since the store came back)."""
    try:
        host.ledger._check_admitting()
    except Exception:
        return False
    return True
