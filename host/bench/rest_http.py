"""The REST alternative: `users.create` over loopback HTTP against a real uvicorn server.

The server is built the way `stockade serve` builds it: `host.server.rest.create_app` over the
home's embedded server, uvicorn with its default loop and HTTP implementation, in a front
process of its own (`host.server.front`; `in_host=True`: in a thread of this process, as `serve
--rest-in-host` serves it), bound to 127.0.0.1 on a free port. The client is one
`httpx.Client` with keep-alive (a well-kept integration client), authenticated with a minted
service token. Each sample is one request's round trip as the client sees it.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.front import RestFront
from host.server.listen import serving, tcp_listener
from host.server.personal_tokens import ensure_service_user


@contextmanager
def rest_server(home: Home, in_host: bool = False) -> Iterator[tuple[str, EmbeddedServer]]:
    """Serve the home's REST API on 127.0.0.1:<free port>; yield (base URL, a server over the
    same store, this process's)."""
    server = EmbeddedServer(home.server_store, SystemClock())
    if in_host:
        with serving(server) as (base, _server, _uv):
            yield base, server
        return
    sock = tcp_listener("127.0.0.1", 0)
    front = RestFront(home, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", server
    finally:
        front.stop()
        sock.close()


def measure_rest_create(home: Home, iterations: int, warmup: int,
                        in_host: bool = False) -> list[float]:
    """Microseconds per `POST /api/v1/users.create` (same arguments as the bridge bench)."""
    with rest_server(home, in_host) as (base, server):
        user, token = ensure_service_user(server, "bench-rest-admin")
        headers = {"X-User-Id": user["id"], "X-Auth-Token": token}
        samples: list[float] = []
        clock = time.perf_counter_ns
        with httpx.Client(base_url=base, headers=headers, timeout=30.0) as client:
            for i in range(warmup + iterations):
                username = f"bench-rest-{i}"
                body = {"username": username, "name": "Bench User", "type": "bot",
                        "roles": ["bot"], "customFields": {"externalId": username}}
                t0 = clock()
                resp = client.post("/api/v1/users.create", json=body)
                dt = clock() - t0
                if resp.status_code != 200:
                    raise RuntimeError(f"REST users.create failed: {resp.status_code} "
                                       f"{resp.text[:300]}")
                if i >= warmup:
                    samples.append(dt / 1000.0)
        return samples
