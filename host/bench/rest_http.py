"""The REST alternative: `users.create` over loopback HTTP against a real uvicorn server.

The server is built the way `stockade serve` builds it (`host.server.rest.create_app` over the
home's embedded server, uvicorn with its default loop and HTTP implementation), bound to
127.0.0.1 on a free port, in a thread of this process. The client is one `httpx.Client` with
keep-alive (a well-kept integration client), authenticated with a minted service token. Each
sample is one request's round trip as the client sees it.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.routing import BaseRoute

from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.listen import tcp_listener
from host.server.personal_tokens import ensure_service_user
from host.server.rest import create_app

SERVER_START_TIMEOUT_S = 10.0


@contextmanager
def rest_server(home: Home) -> Iterator[tuple[str, EmbeddedServer]]:
    """Serve the home's REST API on 127.0.0.1:<free port>; yield (base URL, server)."""
    with serving(EmbeddedServer(home.server_store, SystemClock())) as (base, server, _uv):
        yield base, server


@contextmanager
def serving(server: EmbeddedServer, mounts: Sequence[BaseRoute] = (),
            ) -> Iterator[tuple[str, EmbeddedServer, uvicorn.Server]]:
    """Serve `server`'s REST API (and `mounts` beside it, e.g. the console) on loopback from a
    thread; yield (base URL, server, the uvicorn server)."""
    # tcp_listener, not a bare socket: with proto 0 asyncio leaves Nagle on for accepted
    # connections and every request waited ~40 ms for a delayed ACK (issue 27).
    sock = tcp_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(create_app(server, mounts=mounts), log_level="warning",
                                       lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, name="bench-uvicorn",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the bench's uvicorn server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", server, uv
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        sock.close()


def measure_rest_create(home: Home, iterations: int, warmup: int) -> list[float]:
    """Microseconds per `POST /api/v1/users.create` (same arguments as the bridge bench)."""
    with rest_server(home) as (base, server):
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
