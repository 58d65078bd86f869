"""Stand-ins for the demo's outside systems, one real HTTP endpoint on loopback: a CRM that
records transcripts, and an external live-agent API (Salesforce style) whose agent answers."""
from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# The demo CRM refuses bodies above this (it is a demo endpoint, not a store).
MAX_BODY = 1 << 20


class DemoCrm:
    """POST /transcripts with header X-Api-Key; keeps what it accepted in `received`.
    POST /chat: the external agent system. The agent named in the request answers the
    visitor's text; each request is kept in `chats`."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.received: list[dict[str, Any]] = []
        self.chats: list[dict[str, Any]] = []
        self.rejected = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Accepted sockets inherit it: without it the response's body waits ~40 ms for the
        # client's delayed ACK of the headers on a kept-alive connection.
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        app = Starlette(routes=[Route("/transcripts", self._post, methods=["POST"]),
                                Route("/chat", self._chat, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="critical",
                                                     lifespan="off"))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]}, daemon=True)

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
        self.received.append(doc if isinstance(doc, dict) else {"value": doc})
        return JSONResponse({"ok": True, "id": len(self.received)}, status_code=201)

    async def _chat(self, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            doc = json.loads(body) if len(body) <= MAX_BODY else None
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            return JSONResponse({"error": "expected {room_id, agent, text}"}, status_code=400)
        self.chats.append(doc)
        agent = str(doc.get("agent") or "Support team")[:64]
        asked = " ".join(doc["text"].split())[:80]
        return JSONResponse({"messages": [
            {"text": f"Let me look into \"{asked}\" for you.", "agent": {"name": agent}},
            {"text": "Found it: your order left our warehouse this morning.",
             "agent": {"name": agent}},
        ]})

    def start(self) -> DemoCrm:
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
