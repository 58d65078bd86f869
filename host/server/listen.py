"""Listening sockets and server configs for the product's HTTP servers (the REST API, the console,
the bench's REST server), and `serving`: the REST API served from a thread of this process (the
demo, the benches).

Why the sockets are made here: asyncio sets TCP_NODELAY on an accepted connection only when the
listening socket says it is TCP (`proto == IPPROTO_TCP`); a socket made with
`socket.socket(AF_INET, SOCK_STREAM)` says proto 0, so its connections keep Nagle's algorithm.
uvicorn writes a response's head and body separately, and the second write then waits for the
client's delayed ACK: about 40 ms per request instead of well under one. Every socket the
product listens on is made here, so none can miss it (`tests/server/test_server_listen.py`).

Why the configs are made here (`http_config`): uvicorn's httptools protocol keeps a request's
header block (request line, URL, headers) until its blank line comes, with no cap and no time
limit, so one connection with no credentials could grow the server's memory without bound, or
hold its connection forever. `capped_http_protocol` is that protocol with the block capped in
size, in headers and in time (`tests/server/test_server_head_caps.py`), each request's body
in time (every app caps it in size), and each answer's wait for its reader (`SEND_STALL_S`).
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import ipaddress
import resource
import socket
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn
    from starlette.routing import BaseRoute
    from starlette.types import ASGIApp

    from host.server.embedded import EmbeddedServer

# Pending connections the kernel queues before accept (uvicorn's own default).
BACKLOG = 2048
# How long `serving` waits for its uvicorn server to say it started.
SERVER_START_TIMEOUT_S = 10.0

# The most bytes one request's header block may take, from its request line's first byte to the
# blank line that ends its headers (the URL is in it): a security boundary. The parser keeps the
# whole block in memory until it ends, so this caps what one connection can make the server hold
# before any credential is checked (the body has its own cap, in the REST app). Node's default,
# which Rocket.Chat serves with, is 16 KiB (80 KiB in some releases); our own clients send well
# under 4 KiB. Over it: 431 and the connection closed.
MAX_HEAD_BYTES = 64 * 1024
# The most headers one request may have (Apache's LimitRequestFields): a security boundary. Each
# is a Python tuple of two bytes objects, ~150 bytes of memory for a 4-byte `a:\r\n`, so the byte
# cap alone would let ~16,000 of them cost megabytes. Over it: 431 and the connection closed.
MAX_HEADERS = 100
# How long a header block may take, from the connection's opening (or, on a kept-alive
# connection, from the first read of its request) to its blank line: a security boundary. Without
# it a block that never ends holds its connection, and what it sent, forever. Our clients send
# a head in one write; Node's headersTimeout and nginx's client_header_timeout are 60 s. Over
# it: 408 and the connection closed (closed without a word when nothing was sent).
HEAD_TIMEOUT_S = 10.0
# How long a request's body may take, from its head's end to its last byte: a security
# boundary. Without it a body sent a byte at a time (under every size cap) held its connection
# and a handler waiting on it forever, however many connections a client opened. The largest
# body any listener takes is the console's 4 MiB app package, a moment on any real link; nginx
# gives 60 s between two reads, this 60 s for the whole body. Over it: 408 and the connection
# closed; the handler reading it is told the client went.
BODY_TIMEOUT_S = 60.0
# How long a connection's answer may wait in the server's write buffer without the client taking
# any of it (the buffer above its high-water mark, 64 KiB, the whole time) before the connection
# is dropped, answer and all. Guards the server's memory and its connection slots: uvicorn writes
# a whole answer and then waits for the client with no limit, so a client that asked for a large
# answer (an anonymous visitor's own history: 4 MiB) and never read it held both for good
# (tests/server/test_server_slow_reader.py). A reader that takes any of it in time starts the
# wait again.
SEND_STALL_S = 30.0
# Connections of one server whose answers may wait for their readers at once (writes paused).
# Guards the server's memory within SEND_STALL_S: each holds its whole answer (a visitor's
# history is 4 MiB) until its reader takes it, so MAX_CONNECTIONS of them would hold 4 GiB; past
# this the longest-waiting is dropped (tests/server/test_server_slow_reader.py).
MAX_STALLED = 64
# The most connections one listener keeps open at once: a security boundary. Each holds one of
# the process's file descriptors (RLIMIT_NOFILE), and a listener may run in the apps' host itself
# (`serve --server rocketchat`'s webhook receiver and console, `--rest-in-host`): connections
# opened faster than HEAD_TIMEOUT_S closes them (thousands a second on loopback, asking
# nothing) took every descriptor the host had, and then no store could be opened, no pipe made,
# no app child started. Past the cap a connection is answered 503 and closed at once. Lowered to
# a quarter of the process's descriptor limit where that is smaller (`connection_cap`), so the
# rest always remains for the host.
MAX_CONNECTIONS = 1024
# After a refusal, how long the connection still reads (and drops) what the client sends before
# it closes: a close with unread bytes resets the connection, and the reset can destroy the
# answer before the client reads it. Dropped bytes cost no memory; the time is the bound.
LINGER_S = 1.0


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) names a loopback address: the only binds `serve`
    accepts, and the only `http://` workspace a home connects to without
    `--insecure-plain-http`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Listener(socket.socket):
    """A listening socket whose kernel queue stays BACKLOG deep. asyncio calls `listen` with its
    server's `backlog` when it starts serving (and again after EMFILE), and that same number is
    how many connections it accepts in one go (`accept_batch`, kept small). Kept apart: with a
    kernel queue of `accept_batch` a burst of clients past it had their handshakes dropped and
    retried a second later, and connections that asked nothing were never accepted nor answered."""

    def listen(self, backlog: int = BACKLOG) -> None:
        super().listen(BACKLOG)


def tcp_listener(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket whose accepted connections asyncio sets TCP_NODELAY on.

    Raises OSError (e.g. EADDRINUSE) before anything is served, so a caller can report a busy
    port as the operator's input error.
    """
    raise_fd_limit()  # before any listener's caps are computed from it
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP,
                               flags=socket.AI_PASSIVE)
    family, kind, proto, _canon, addr = infos[0]
    sock = Listener(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


@contextmanager
def serving(server: EmbeddedServer, mounts: Sequence[BaseRoute] = (), *,
            widget_rate: int | None = None, trusted_proxies: Sequence[str] = (),
            hosts: Sequence[str] = (),
            ) -> Iterator[tuple[str, EmbeddedServer, uvicorn.Server]]:
    """Serve `server`'s REST API (and `mounts` beside it, e.g. the console) on loopback from a
    thread; yield (base URL, server, the uvicorn server). `widget_rate`, `trusted_proxies`,
    `hosts`: `create_app`'s (None: its default rate)."""
    import uvicorn  # the web stack only for what serves HTTP

    from host.server.rest import create_app

    sock = tcp_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    rate = {} if widget_rate is None else {"widget_rate": widget_rate}
    uv = uvicorn.Server(http_config(create_app(server, mounts=mounts, hosts=hosts,
                                               trusted_proxies=trusted_proxies, **rate),
                                    log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, name="stockade-uvicorn",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the REST API's uvicorn server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", server, uv
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        sock.close()


def http_config(app: ASGIApp, **kwargs: Any) -> uvicorn.Config:
    """The uvicorn config every HTTP server of the product runs with: `uvicorn.Config(app,
    **kwargs)` with the header block capped (`capped_http_protocol`) and no forwarding header
    trusted. Guards: uvicorn trusts X-Forwarded-For/-Proto from loopback by default, and a port
    in X-Forwarded-For let any local user pass for the operator's own console connection
    (`host.console.peer`); a request's client is always its TCP peer. The one reader of a
    forwarded address is the widget's rate limit, for its key alone and only from a proxy the
    operator names (`host.server.clientaddr`, `serve --trusted-proxy`).

    uvicorn's loggers get no handlers of their own (`log_config=None`): what they log reaches
    the process's root handler, `host.logline`'s where the host serves (DESIGN rule 12).
    uvicorn's own handler wrote "Exception in ASGI application" and its traceback raw, so a
    failure whose message quoted a client's value put its escapes and lines on the operator's
    screen."""
    import uvicorn  # the web stack only for what serves HTTP

    kwargs.setdefault("proxy_headers", False)
    kwargs.setdefault("log_config", None)
    kwargs.setdefault("backlog", accept_batch())
    return uvicorn.Config(app, http=capped_http_protocol(), **kwargs)


def connection_cap() -> int:
    """MAX_CONNECTIONS, or a quarter of this process's file descriptor limit if lower (never
    under 16: a listener that can take no connection serves nothing)."""
    return _share_of_fds(MAX_CONNECTIONS, 4)


# The accept batch's share of the descriptor limit: a security boundary, with the cap above.
# asyncio accepts up to a batch each time the listening socket is readable, then gives each
# connection its protocol two loop turns later and frees a refused one's descriptor a turn after
# that, while the next turns accept further batches: about four batches are in hand at once
# past the cap's own connections. At a quarter of the limit a flood took every descriptor (a
# host stopped for a second, then resumed with the kernel's queue full: EMFILE in one run of
# five, tests/server/test_server_connection_cap.py); at a thirty-second, four batches are an
# eighth.
ACCEPT_SHARE = 32


def accept_batch() -> int:
    """How many connections the event loop accepts in one go (asyncio accepts up to its
    server's `backlog` before any of them reaches the protocol that refuses those past the
    cap): BACKLOG, or ACCEPT_SHARE's part of the descriptor limit if lower."""
    return _share_of_fds(BACKLOG, ACCEPT_SHARE)


def _share_of_fds(most: int, parts: int) -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return most
    return max(16, min(most, soft // parts))


def raise_fd_limit() -> None:
    """Raise this process's soft descriptor limit to its hard limit (as Go's runtime and
    systemd's guidance do: the soft limit of 1,024 many systems start with exists for select(),
    which nothing here uses), so the caps above leave the host room. Children set their own
    (`sandbox.confine`)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@functools.cache
def capped_http_protocol() -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol (the fastest here; pyproject.toml) with each request's header
    block capped: MAX_HEAD_BYTES, MAX_HEADERS, HEAD_TIMEOUT_S. A security boundary. Made on first
    use, so that importing this module (every CLI command does) does not import the web stack.

    The bytes are counted as they arrive, before the parser sees them: httptools keeps a header's
    partial name and value inside itself and tells the protocol only once the header ends, so a
    count taken in its callbacks would come too late. A chunked body's trailer section is a
    header block too (the parser keeps it the same way), capped alike. A block that starts inside
    a read that also held what came before it (a pipelined request, the trailers after the last
    chunk's size line) is counted from the next read on: it may hold at most one read more than
    the cap (a read is at most MAX_HEAD_BYTES under asyncio, 256 KiB under uvloop).
    """
    import httptools
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

    class HeadRefused(Exception):
        """Raised in a parser callback: stop parsing a request already refused."""

    # Per server (its state object, one event loop each): its connections whose writes are
    # paused, the longest-waiting first.
    stalled_of: weakref.WeakKeyDictionary[Any, dict[Any, None]] = weakref.WeakKeyDictionary()

    class CappedHttpToolsProtocol(HttpToolsProtocol):
        # True while the next bytes may be a header block: from a message's end (or the
        # connection's start) to its headers' end, and from a chunk's size line to its data
        # (after the last chunk's, the trailers come).
        _in_block = True
        _block_bytes = 0  # bytes of the current block so far
        _head_pending = False  # a request has begun and its headers have not ended
        _refused = False  # answered 431/408: what the client sends from here on is dropped
        _head_timer: asyncio.TimerHandle | None = None
        _body_timer: asyncio.TimerHandle | None = None
        _linger: asyncio.TimerHandle | None = None
        _send_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > connection_cap():
                # Over the cap: answered and closed now, not lingered over (a flood's refusals
                # must not hold descriptors of their own). Its request, if any came already, is
                # never read.
                self._refused = True
                transport.write(_OVERLOADED)
                transport.close()
                return
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)
            if hasattr(transport, "max_size"):
                # asyncio's socket transport reads up to 256 KiB at once into a new bytes
                # object: above glibc's mmap threshold, so on an unlucky heap every read was an
                # mmap, mremap and munmap (+60-90 us per REST request, measured). Reads of at
                # most the cap come from the heap, and bound what one read adds to a block.
                transport.max_size = MAX_HEAD_BYTES

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            self._stop_body_timer()
            self._unstall()
            if self._linger is not None:
                self._linger.cancel()
                self._linger = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            self._unset_keepalive_if_required()
            while data:
                if self._in_block:
                    room = MAX_HEAD_BYTES - self._block_bytes
                    if room <= 0:
                        self._refuse(431)
                        return
                    # No more than the cap allows: a block that does not end within it is
                    # never parsed (nor kept) further.
                    piece, data = data[:room], data[room:]
                    self._block_bytes += len(piece)
                else:
                    piece, data = data, b""
                if not self._feed(piece):
                    return
            if self._head_pending and self._head_timer is None:
                # A head that came whole in one read (nearly every one) never needs a timer.
                self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)
            elif (not self._head_pending and self._body_timer is None and self.cycle is not None
                  and self.cycle.more_body):
                # A body still to come (one that came with its head needs no timer). Counted
                # from the end of the read that ended its head.
                self._body_timer = self.loop.call_later(BODY_TIMEOUT_S, self._body_timed_out)

        def _feed(self, piece: bytes) -> bool:
            """uvicorn's own parse step (`HttpToolsProtocol.data_received`); False: stop."""
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return False
            except httptools.HttpParserError:
                if not self._refused:  # not our own stop (HeadRefused): a malformed request
                    msg = "Invalid HTTP request received."
                    self.logger.warning(msg)
                    self.send_400_response(msg)
                return False
            return not self._refused and not self.transport.is_closing()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_pending = True

        def on_header(self, name: bytes, value: bytes) -> None:
            super().on_header(name, value)
            if len(self.headers) > MAX_HEADERS:  # trailers are added to the same list
                self._refuse(431)
                raise HeadRefused

        def on_headers_complete(self) -> None:
            self._in_block = self._head_pending = False
            self._stop_head_timer()
            super().on_headers_complete()

        def on_chunk_header(self) -> None:
            self._in_block, self._block_bytes = True, 0

        def on_body(self, body: bytes) -> None:
            self._in_block = False
            super().on_body(body)

        def on_chunk_complete(self) -> None:
            self._in_block = False

        def on_message_complete(self) -> None:
            self._stop_body_timer()
            super().on_message_complete()
            self._in_block, self._block_bytes = True, 0

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _stop_body_timer(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

        def _body_timed_out(self) -> None:
            self._body_timer = None
            if self._refused or self.transport.is_closing():
                return
            cycle = self.cycle
            if cycle is not None and cycle.response_complete:
                self.transport.close()  # answered already: the rest of its body is not waited for
            else:
                self._refuse(408)

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._send_timer is None:
                self._send_timer = self.loop.call_later(SEND_STALL_S, self._send_stalled)
            stalled = stalled_of.setdefault(self.server_state, {})
            stalled[self] = None
            while len(stalled) > MAX_STALLED:
                next(iter(stalled))._send_stalled()  # the longest-waiting first

        def resume_writing(self) -> None:
            self._unstall()
            super().resume_writing()

        def _unstall(self) -> None:
            if self._send_timer is not None:
                self._send_timer.cancel()
                self._send_timer = None
            stalled_of.get(self.server_state, {}).pop(self, None)

        def _send_stalled(self) -> None:
            """The client took nothing of its answer for SEND_STALL_S, or MAX_STALLED others
            wait too and it has waited longest: dropped (abort, not close: a close waits for
            the buffer to be sent, which is what does not happen). The handler's pending send
            returns as for a client that went (`connection_lost`)."""
            self._unstall()
            self.transport.abort()

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self._refused or self.transport.is_closing():
                return
            if self._head_pending:
                self._refuse(408)
            else:
                self.transport.close()  # it asked nothing: nothing to answer

        def _refuse(self, status: int) -> None:
            """Answer `status` and close: nothing more of the connection is parsed."""
            self._refused = True
            self._stop_head_timer()
            self._stop_body_timer()
            cycle = self.cycle
            if cycle is not None and cycle.more_body:
                # Its own trailers were refused: its app is told the client went, and nothing
                # it answers is written.
                cycle.disconnected = True
                cycle.message_event.set()
            if self.pipeline or (cycle is not None and not cycle.response_complete
                                 and (cycle.response_started or not cycle.more_body)):
                # Another request's answer is (or is to be) written on this connection: no
                # answer can go in the middle of it. Closed without one.
                self.transport.close()
                return
            body = http.HTTPStatus(status).phrase.encode("ascii")
            out = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                out += [name, b": ", value, b"\r\n"]
            out += [b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n", body]
            self.transport.write(b"".join(out))
            if self.transport.can_write_eof():
                self.transport.write_eof()  # the answer, then our end closed; reads go on
            self._linger = self.loop.call_later(LINGER_S, self.transport.close)

    return CappedHttpToolsProtocol


_OVERLOADED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
               b"content-length: 19\r\nconnection: close\r\n\r\nService Unavailable")
