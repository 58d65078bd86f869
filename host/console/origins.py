"""Where the console's pages are served from: its own loopback address, and the origins a
reverse proxy in front of it serves it as (`stockade serve --console-origin`).

What it guards: a change posted from a page of another site (CSRF; the session's token is the
other half), and DNS rebinding (the Host names the console answers, `host.console.app`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # `serve` imports this module; the web stack only for what serves
    from starlette.requests import Request

# Passes the `--console-origin` values from `serve` to the front process it starts (which
# inherits the environment); space-separated origins.
ORIGINS_ENV = "STOCKADE_CONSOLE_ORIGINS"


def parse_origin(text: str) -> str:
    """`scheme://host[:port]` as a browser sends it in Origin; ValueError for anything else
    (a path, a query, credentials, a scheme other than http or https)."""
    parts = urlsplit(text.strip())
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r}: the port is not a number") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username \
            or parts.password or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{text!r} is not an origin like https://console.example.com[:PORT]")
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def host_names(origins: Sequence[str]) -> list[str]:
    """The Host header names (without port) the origins are served under."""
    return [urlsplit(o).hostname or "" for o in origins]


def source_origin(request: Request) -> str | None:
    """The origin a request says its page came from (Origin, else Referer's); None when it says
    none, or none that parses as a URL (`urlsplit` raises on an unclosed IPv6 bracket: a
    request's header must be refused as cross-origin, never be a 500)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return None
    try:
        parts = urlsplit(source)
    except ValueError:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _as_proxied(request: Request, origins: Sequence[str]) -> bool:
    """The request came in under the name (and port) of an origin a proxy serves the console
    as: the proxy passed the browser's Host on."""
    netloc = request.url.netloc.lower()
    for origin in origins:
        parts = urlsplit(origin)
        written = {parts.netloc}  # a Host header may name the scheme's default port too
        if parts.port is None:
            written.add(f"{parts.netloc}:{ {'http': 80, 'https': 443}[parts.scheme]}")
        if netloc in written:
            return True
    return False


def same_origin(request: Request, origins: Sequence[str]) -> bool:
    """A state-changing request must come from a page of this console: a browser sends Origin
    (or at least Referer) on a POST, and a cross-site one says so in Sec-Fetch-Site. The page
    is the console's when its origin is one a proxy serves it as, or the request's own; but not
    the request's own under a proxy's name: the scheme there is the upstream hop's (http), so
    the "own" origin of https://NAME's request is http://NAME, a plain-HTTP page the operator
    never named (a network attacker's, or another site on port 80)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    source = source_origin(request)
    if source is None:
        return False
    if source in origins:
        return True
    return source == f"{request.url.scheme}://{request.url.netloc}" \
        and not _as_proxied(request, origins)
