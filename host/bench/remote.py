"""`stockade bench --rocketchat`: what the remote adapter adds to a REST call.

A stand-in workspace runs as its own process (`stockade standin`, loopback). Measured, each
after a warm-up, alternating in rounds so drift hits both alike:

- `bridge_users_get_us`: a bridge call, `ctx.users.get(uid)` timed by an app in its confined
  child, through the gate (decision, audit) and `RemoteServer` to the stand-in;
- `adapter_users_get_us`: `RemoteServer.users_get` alone — the adapter method that bridge call
  ends in (argument checks, the pooled client, the typed error mapping, the conversion to
  Stockade's user shape and the ownership look-up in host.db);
- `direct_users_info_us`: the same `GET /api/v1/users.info` made directly with httpx (one pooled
  `httpx.Client`, the same headers).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from host.bench.stats import p50, p99
from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.personal_tokens import ensure_service_user
from host.server.principals import SYSTEM
from host.server.remote.client import RcClient
from host.server.remote.server import RemoteServer

QUICK = (300, 50)
FULL = (2000, 200)


def _bridge_reads(home: Home, root: Path, url: str, user_id: str, token: str,
                  remote: RemoteServer, iterations: int, warmup: int,
                  degraded: bool) -> list[float]:
    """An app's `ctx.users.get` loop in its confined child, the host serving the stand-in."""
    from host.bench.apps import install_bench_apps
    from host.bench.bridge import measure_reads
    from host.runtime import Host, HostConfig
    from host.server.remote import config

    config.save(home, url, user_id, token)
    installs = install_bench_apps(home, root / "apps", 1)
    host = Host(home, config=HostConfig(degraded=degraded, watch=False), server=remote)
    host.start()
    try:
        return measure_reads(host, installs, user_id, iterations, warmup)
    finally:
        host.stop()


def measure_remote(iterations: int, warmup: int, *, bridge: bool = True,
                   degraded: bool = False) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="stockade-bench-rc-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        standin = Home(root / "standin").ensure()
        srv = EmbeddedServer(standin.server_db, SystemClock())
        user, token = ensure_service_user(srv, "bench")
        srv.db.close()
        ready = root / "ready"
        proc = subprocess.Popen(
            [sys.executable, "-c", "from host.cli.entry import main; main()", "--home",
             str(standin.root), "standin", "--port", "0", "--ready-file", str(ready),
             # It dies with the bench, however the bench ends (a SIGKILL runs no `finally`).
             "--parent-pid", str(os.getpid())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the stand-in did not start")
            time.sleep(0.02)
        url = json.loads(ready.read_text())["url"]
        home = Home(root / "host").ensure()
        remote = RemoteServer(RcClient(url, user["id"], token), home.host_store, SystemClock())
        direct = httpx.Client(base_url=url, timeout=10, trust_env=False,
                              headers={"X-User-Id": user["id"], "X-Auth-Token": token})
        uid = user["id"]
        adapter: list[float] = []
        plain: list[float] = []
        clock = time.perf_counter_ns
        for i in range(warmup + iterations):
            t0 = clock()
            remote.users_get(SYSTEM, uid)
            t1 = clock()
            r = direct.get("/api/v1/users.info", params={"userId": uid})
            r.json()
            t2 = clock()
            if i >= warmup:
                adapter.append((t1 - t0) / 1000.0)
                plain.append((t2 - t1) / 1000.0)
        direct.close()
        out = {"adapter_users_get_us": p50(adapter), "adapter_users_get_p99_us": p99(adapter),
               "direct_users_info_us": p50(plain), "direct_users_info_p99_us": p99(plain),
               "adapter_overhead_us": p50(adapter) - p50(plain)}
        if bridge:
            reads = _bridge_reads(home, root, url, user["id"], token, remote, iterations,
                                  warmup, degraded)
            out.update({"bridge_users_get_us": p50(reads), "bridge_users_get_p99_us": p99(reads)})
        remote.close()
        return out
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)
