"""What an app's outbound HTTP request may carry (its method, headers and body), and how the
response reaches the app.

One copy, used by the host before anything goes on the wire (`host.bridges.httpout.perform`)
and by the author harness (`sandbox.harness`), so an app whose request the host refuses (a
`Content-Length` or `Host` header it set itself, a visitor's name with an accent in a header, a
body that is not text) fails its tests with the host's words, not only in production. Pure:
no I/O; a refusal is a `RequestRefused` whose message the app sees.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

MAX_REQUEST_BODY = 1 << 20  # bytes of body the app may send (guards the host's memory)
MAX_RESPONSE_BYTES = 1 << 20  # body kept and returned to the app; a larger one is refused
MAX_HEADER_VALUE = 1024  # characters of a response header's value the app is shown
MAX_HEADERS = 50  # headers the app may set (and that it is shown of a response)
# Headers an app may not set: they would let it steer the connection or smuggle requests.
FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                               "upgrade", "proxy-authorization", "te", "trailer"})
# Headers the host sets in place of the app's (dropped from the app's, never refused): the body
# is asked for uncompressed, so the size cap counts the bytes the app receives.
HOST_SET_HEADERS = frozenset({"accept-encoding"})
# What a method may hold (RFC 9110's token): nothing that could end the request line early.
METHOD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~")
# What a header name may hold (RFC 9110's token, either case). Guards the quota and the wire: a
# name outside it (a space, a colon) failed only in h11, after the connection was made, so the
# app's unit was kept for a request that never went out.
NAME_CHARS = METHOD_CHARS | frozenset("abcdefghijklmnopqrstuvwxyz")
# Control characters no header value may carry (HTAB is whitespace and allowed). Guards the
# server behind the URL: h11 sent \x01 or \x7f as given, and servers and proxies disagree on
# what such a byte is (whitespace, a line end, part of the value): a request-smuggling surface.
VALUE_CONTROLS = frozenset(chr(c) for c in (*range(0x09), *range(0x0A, 0x20), 0x7F))
# Whitespace a header value may not begin or end with (RFC 9110's OWS is no part of a value).
# Guards the quota: h11 refuses such a value only once the connection is made, so a request
# that never went out kept its unit, and the author harness passed it.
VALUE_EDGE_SPACE = " \t"


class RequestRefused(ValueError):
    """The request cannot be sent as the app asked; the message names what (the app's
    mistake: refused before anything is sent, its unit refunded)."""


def checked_request(method: object, headers: object, body: object
                    ) -> tuple[str, dict[str, str], bytes | None]:
    """(the method upper-cased, the headers to send, the body's bytes) or RequestRefused."""
    verb = str(method).upper()
    if not verb or not set(verb) <= METHOD_CHARS:
        raise RequestRefused(f"method {verb[:20]!r} is not an HTTP method")
    given = headers or {}
    if not isinstance(given, Mapping) or not all(isinstance(k, str) for k in given):
        raise RequestRefused("headers must be an object of header names")
    sent = {k: v for k, v in given.items() if k.lower() not in HOST_SET_HEADERS}
    if len(sent) > MAX_HEADERS:
        raise RequestRefused(f"more than {MAX_HEADERS} headers")
    for name, value in sent.items():
        # ASCII only: the wire carries bytes, and a value that cannot be sent is the app's
        # mistake (refused, refunded), not the host's.
        if not isinstance(value, str) or name.lower() in FORBIDDEN_HEADERS or not name or \
                not set(name) <= NAME_CHARS or not VALUE_CONTROLS.isdisjoint(value) or \
                not value.isascii() or value != value.strip(VALUE_EDGE_SPACE):
            raise RequestRefused(f"header {name[:40]!r} is not allowed")
    if body is not None and not isinstance(body, str):
        # Was sent with no body at all, silently: a dict the app meant as JSON never arrived.
        raise RequestRefused(f"body must be text (a str, e.g. json.dumps(...)), not "
                             f"{type(body).__name__}")
    data = body.encode() if isinstance(body, str) else None
    if data is not None and len(data) > MAX_REQUEST_BODY:
        raise RequestRefused(f"request body over {MAX_REQUEST_BODY} bytes")
    return verb, sent, data


def app_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A response's headers as the app sees them: names lower-cased, a repeated name's values
    joined with ", ", at most `MAX_HEADERS` names, each value cut at `MAX_HEADER_VALUE`."""
    merged: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key in merged:
            merged[key] += ", " + value
        elif len(merged) < MAX_HEADERS:
            merged[key] = value
    return {k: v[:MAX_HEADER_VALUE] for k, v in merged.items()}
