"""What every HTTP app of the product answers when its client went while a handler read the
request's body (it hung up, or its body ran out of time: `host.server.listen.BODY_TIMEOUT_S`)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response


async def client_gone(_request: Request, _exc: Exception) -> Response:
    """The handler for starlette's `ClientDisconnect`: nothing can be answered, and it is no
    server fault, so no traceback goes to the server's log."""
    return Response(status_code=400)  # never written: the connection is gone
