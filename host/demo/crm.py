"""Stand-ins for the demo's outside systems, one real HTTP endpoint on loopback: a CRM that
records transcripts, and an external live-agent API (Salesforce style) whose agent answers."""
from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# The demo CRM refuses bodies above this (it is a demo endpoint, not a store).
MAX_BODY = 1 << 20


class CrmEndpoint(Protocol):
    """Where the demo's settings point crm-sync and proxy-agent: the in-process `DemoCrm`, or
    the benches' `host.bench.crm_process.CrmProcess`."""

    port: int


class DemoCrm:
    """POST /transcripts with header X-Api-Key; keeps what it accepted in `received`.
    POST /chat: the external agent system. The agent named in the request answers the
    visitor's text; each request is kept in `chats`. GET /stats: the counts.

    `keep=False` counts without keeping (the benches' long runs: a CRM that keeps every
    transcript grows by design, and must not be read as the host's leak)."""

    def __init__(self, api_key: str, *, keep: bool = True) -> None:
        self.api_key = api_key
        self.keep = keep
        self.received: list[dict[str, Any]] = []
        self.chats: list[dict[str, Any]] = []
        self.received_count = 0
        self.chats_count = 0
        self.rejected = 0
        self.port = 0  # known once started
        app = Starlette(routes=[Route("/transcripts", self._post, methods=["POST"]),
                                Route("/chat", self._chat, methods=["POST"]),
                                Route("/stats", self._stats, methods=["GET"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="critical",
                                                     lifespan="off"))
        self._thread: threading.Thread | None = None

    async def _post(self, request: Request) -> JSONResponse:
        if request.headers.get("x-api-key") != self.api_key:
            self.rejected += 1
            return JSONResponse({"error": "bad api key"}, status_code=401)
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "too large"}, status_code=413)
        try:
            doc = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "not JSON"}, status_code=400)
        self.received_count += 1
        if self.keep:
            self.received.append(doc if isinstance(doc, dict) else {"value": doc})
        return JSONResponse({"ok": True, "id": self.received_count}, status_code=201)

    async def _stats(self, request: Request) -> JSONResponse:
        return JSONResponse({"received": self.received_count, "chats": self.chats_count,
                             "rejected": self.rejected})

    async def _chat(self, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            doc = json.loads(body) if len(body) <= MAX_BODY else None
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            return JSONResponse({"error": "expected {room_id, agent, text}"}, status_code=400)
        self.chats_count += 1
        if self.keep:
            self.chats.append(doc)
        agent = str(doc.get("agent") or "Support team")[:64]
        asked = " ".join(doc["text"].split())[:80]
        return JSONResponse({"messages": [
            {"text": f"Let me look into \"{asked}\" for you.", "agent": {"name": agent}},
            {"text": "Found it: your order left our warehouse this morning.",
             "agent": {"name": agent}},
        ]})

    def start(self) -> DemoCrm:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Accepted sockets inherit it: without it the response's body waits ~40 ms for the
        # client's delayed ACK of the headers on a kept-alive connection.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)


def main() -> None:
    """`python -m host.demo.crm API_KEY READY_FILE`: a counting CRM in a process of its own
    (the benches' `host.bench.crm_process`); writes its port to READY_FILE, serves until
    killed."""
    import sys
    from pathlib import Path

    api_key, ready = sys.argv[1], Path(sys.argv[2])
    crm = DemoCrm(api_key, keep=False).start()
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(str(crm.port), encoding="ascii")
    tmp.replace(ready)  # whole, or not there
    if crm._thread is not None:
        crm._thread.join()


if __name__ == "__main__":
    main()
