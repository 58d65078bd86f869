"""`stockade serve`: run the embedded chat server's REST API on loopback.

The lead's app host reuses `build_server(home, clock)` to open the same server in-process.
"""
from __future__ import annotations

import errno
import socket

import typer

from host.cli.interrupt import Terminated
from host.cli.output import EXIT_NEGATIVE, EXIT_USAGE, err_console, fail
from host.clock import Clock, SystemClock
from host.console.origins import ORIGINS_ENV, host_names, parse_origin
from host.home import Home
from host.server.clientaddr import parse_trusted
from host.server.embedded import EmbeddedServer
from host.server.listen import http_config, is_loopback, tcp_listener
from host.server.ratelimit import WIDGET_CALLS_PER_MIN
from host.server.resthosts import parse_name


def build_server(home: Home, clock: Clock) -> EmbeddedServer:
    """Open (creating if needed) the embedded server in `home` (HOME/server.db)."""
    from host.store import opening_stores

    home.ensure()
    with opening_stores(home):
        return EmbeddedServer(home.server_store, clock)


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port), or exit 2 with one line saying why not.

    Made by `tcp_listener`, so its connections get TCP_NODELAY (a proto-0 socket here cost
    every request ~40 ms of delayed ACK; see host/server/listen.py)."""
    try:
        return tcp_listener(host, port)
    except OSError as exc:
        why = ("is already in use" if exc.errno == errno.EADDRINUSE
               else f"cannot be bound ({exc.strerror})")
        fail(f"port {port} on {host} {why}", "stop what listens there, or pass --port N "
             "(--port 0 picks a free one)", EXIT_USAGE)


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to bind."),
    port: int = typer.Option(3000, "--port", min=0, max=65535, help="TCP port (0: any free)."),
    mint_token: str = typer.Option(
        None, "--mint-token", metavar="USERNAME",
        help="Create/reuse admin service user USERNAME, print a new token once, and exit.",
    ),
    expires_in: str = typer.Option(
        None, "--expires-in", metavar="DURATION",
        help="With --mint-token: how long the token is valid, in minutes, hours, days or weeks "
        "(30m, 12h, 90d, 4w; default 30d, at most 365d)."),
    replace: bool = typer.Option(
        False, "--replace", help="With --mint-token: revoke the user's earlier service tokens "
        "as the new one is stored (a rotation with no moment without a valid token)."),
    list_tokens: str = typer.Option(
        None, "--list-tokens", metavar="USERNAME",
        help="Show the REST tokens server user USERNAME holds (name, kind, when made, when it "
        "expires; never the token), and exit."),
    revoke_tokens: str = typer.Option(
        None, "--revoke-tokens", metavar="USERNAME",
        help="Revoke every REST token server user USERNAME holds (audited), and exit."),
    json_out: bool = typer.Option(False, "--json", help="With --mint-token, --list-tokens or "
                                  "--revoke-tokens: JSON on stdout."),
    apps: bool = typer.Option(True, "--apps/--no-apps", help="Also run the installed apps."),
    degraded: bool = typer.Option(
        False, "--degraded", help="Run apps even if a confinement layer is missing, or the "
        "audit chain does not verify (a new, anchored segment then records the break)."),
    rest_identity: str = typer.Option(
        None, "--rest-identity", metavar="USERNAME", hidden=True,
        help="Removed: REST calls act as each app's own user (see `app consent --rest-as`)."),
    pre_send_timeout: str = typer.Option(
        "fail-closed", "--pre-send-timeout",
        help="What a pre-send hook that misses its deadline means: fail-closed or fail-open."),
    server_kind: str = typer.Option(
        None, "--server", metavar="embedded|rocketchat",
        help="The chat server: the embedded one, or the Rocket.Chat workspace the home is "
        "connected to (the default once `stockade rocketchat connect` ran)."),
    url: str = typer.Option(None, "--url", help="With --server rocketchat: the workspace URL "
                            "(overrides the home's rocketchat.toml)."),
    pin_apps: bool = typer.Option(
        False, "--pin-apps", help="Run each app's child and the thread answering its calls on "
        "one core (2-core machines: faster bridge calls, slower REST-heavy loads; "
        "docs/BENCH.md)."),
    pin_bursts: bool = typer.Option(
        True, "--pin-bursts/--no-pin-bursts", help="Pin an app's child and that thread to one "
        "core while a handler makes many bridge calls, and only then (2-core machines)."),
    host_core: bool = typer.Option(
        True, "--host-core/--no-host-core", help="The host's threads on one core, its apps and "
        "front on every core (2-core machines: the interpreter lock changes hands without waking "
        "the other core; docs/BENCH.md)."),
    fresh_interpreters: bool = typer.Option(
        False, "--fresh-interpreters", help="Start each app's child as a fresh interpreter, "
        "not forked from the zygote: no two apps then share an address layout, stack canary "
        "or hash secret (SECURITY.md), at ~60-120 ms a start instead of ~4 ms."),
    console_origins: list[str] = typer.Option(
        [], "--console-origin", metavar="https://NAME[:PORT]",
        help="An origin a reverse proxy on this machine serves the console as (repeatable): "
        "its name is answered and its pages may post; sessions opened through it are bound "
        "to the proxy's local account (docs/CONSOLE.md)."),
    rest_hosts: list[str] = typer.Option(
        [], "--rest-host", metavar="NAME",
        help="A host name a reverse proxy on this machine passes on to the REST API in Host "
        "(repeatable). The API answers only loopback's name, addresses and the names given "
        "here and by --console-origin: another name is a 400 (DNS rebinding; "
        "docs/ARCHITECTURE.md)."),
    rest_process: bool = typer.Option(
        True, "--rest-process/--rest-in-host", help="Serve the REST API and the console from "
        "a process of their own beside the apps' host (the default: requests do not share the "
        "host's interpreter, about 30 % less of the host's CPU a conversation, docs/BENCH.md), "
        "or from the host's own process."),
    front_timeout: float = typer.Option(
        30.0, "--front-timeout", min=0, help="With --rest-process: how long (s) the REST front "
        "may leave the host's probe (GET /api/info) unanswered before it is killed and another "
        "started, as after an exit (0: never)."),
    widget_rate: int = typer.Option(
        WIDGET_CALLS_PER_MIN, "--widget-rate", min=0, metavar="CALLS",
        help="Calls a minute the chat widget's public REST routes take from one client "
        "address (a twelfth of it for visitor registrations), answered 429 past it as "
        "Rocket.Chat's rate limiter answers (0: no limit; behind a reverse proxy, see "
        "--trusted-proxy)."),
    trusted_proxies: list[str] = typer.Option(
        [], "--trusted-proxy", metavar="ADDR_OR_CIDR",
        help="A reverse proxy on this machine (an address, or a network in CIDR form; "
        "repeatable) whose X-Forwarded-For names the client the widget's rate limit counts: "
        "the rightmost address in it that is not a trusted proxy's. Only that limit reads it; "
        "the console never does (docs/CONSOLE.md)."),
) -> None:
    """Serve the REST API (/api/v1/...) on loopback, and run the installed apps; or, against
    a Rocket.Chat workspace, run the apps and receive its webhooks on loopback."""
    home: Home = ctx.obj
    from host.server.remote.config import connected

    kind = server_kind or ("rocketchat" if connected(home) else "embedded")
    if kind not in ("embedded", "rocketchat"):
        fail(f"--server {kind!r} is not embedded or rocketchat", code=EXIT_USAGE)
    if rest_identity is not None:
        # A host-wide identity gave every app with server.rest that user's full powers.
        fail("--rest-identity was removed: a REST call acts as the app's own user",
             hint="to name another server user for one app, run `stockade app consent APP "
             "--grant ... --rest-as USERNAME` (shown in the disclosure, signed in the consent)",
             code=EXIT_USAGE)
    try:
        origins = [parse_origin(o) for o in console_origins]
    except ValueError as exc:
        fail(f"--console-origin {exc}", code=EXIT_USAGE)
    try:
        # The REST API answers these Host names besides loopback's and every address: those a
        # proxy passes on, and the console's (its proxy serves the API under the same name).
        hosts = [*(parse_name(n) for n in rest_hosts), *host_names(origins)]
    except ValueError as exc:
        fail(f"--rest-host {exc}", hint="e.g. --rest-host chat.example.com", code=EXIT_USAGE)
    try:
        proxies = [str(parse_trusted(p)) for p in trusted_proxies]
    except ValueError as exc:
        fail(f"--trusted-proxy {exc}", hint="e.g. --trusted-proxy 127.0.0.1 or "
             "--trusted-proxy 10.0.0.0/8", code=EXIT_USAGE)
    if not is_loopback(host):
        fail(
            f"refusing to bind {host!r}: the REST API speaks plain HTTP with bearer tokens, so it "
            "listens on loopback only",
            hint="bind 127.0.0.1 (or ::1) and put a TLS reverse proxy in front for remote access",
            code=EXIT_USAGE,
        )
    from host.errors import StartRefused
    from host.store import refuse_damaged_stores

    try:
        refuse_damaged_stores(home)  # before anything opens a store for writing
    except StartRefused as exc:
        fail(exc.message, exc.hint, EXIT_NEGATIVE)
    token_acts = [o for o, v in (("--mint-token", mint_token), ("--list-tokens", list_tokens),
                                 ("--revoke-tokens", revoke_tokens)) if v is not None]
    if len(token_acts) > 1:
        fail(f"{' and '.join(token_acts)} go one at a time", code=EXIT_USAGE)
    if mint_token is None and (expires_in is not None or replace):
        fail("--expires-in and --replace go only with --mint-token", code=EXIT_USAGE)
    ttl_s = 0
    if mint_token is not None:
        from host.cli.serve_tokens import parse_expires_in

        ttl_s = parse_expires_in(expires_in)  # exit 2 before any store is opened
    if token_acts:
        kind = "embedded"  # the tokens are the embedded server's, whichever serves the apps
    if kind == "rocketchat" and mint_token is None and not apps:
        fail("--no-apps serves nothing against a Rocket.Chat workspace (its REST API is "
             "its own)", hint="drop --no-apps, or pass --server embedded", code=EXIT_USAGE)
    if kind == "rocketchat" and mint_token is None and rest_hosts:
        fail("--rest-host names the embedded server's REST API's hosts; a Rocket.Chat "
             "workspace serves its own", hint="drop --rest-host, or pass --server embedded",
             code=EXIT_USAGE)
    if kind == "rocketchat" and mint_token is None:
        from host.cli.serve_remote import serve_remote
        from host.runtime import HostConfig

        if pre_send_timeout not in ("fail-closed", "fail-open"):
            fail(f"--pre-send-timeout {pre_send_timeout!r} is not fail-closed or fail-open")
        serve_remote(home, host, bind_listener(host, port), url, origins, HostConfig(
            degraded=degraded, pin_apps=pin_apps, pin_bursts=pin_bursts, host_core=host_core,
            use_zygote=not fresh_interpreters,
            pre_send_timeout="fail_closed"
            if pre_send_timeout == "fail-closed" else "fail_open"))
        return
    try:
        server = build_server(home, SystemClock())
    except StartRefused as exc:  # a store that cannot be opened; a stray server.db
        fail(exc.message, exc.hint, EXIT_NEGATIVE)
    if list_tokens is not None or revoke_tokens is not None:
        from host.cli import serve_tokens

        if list_tokens is not None:
            serve_tokens.list_tokens(server, list_tokens, json_out)
        else:
            serve_tokens.revoke_tokens(home, server, revoke_tokens, json_out)
        return
    if mint_token is not None:
        from host.cli import serve_tokens

        serve_tokens.mint_token(home, server, mint_token, ttl_s, replace, json_out)
        return
    import uvicorn
    from starlette.routing import Mount

    from host.cli.serve_lease import exit_if_lease_lost, serve_until_lease_lost
    from host.console.app import create_console
    from host.server.rest import create_app

    # Bind before anything starts or is printed as serving: a busy port is the operator's input
    # error (exit 2, one line), not uvicorn's Errno after the URL was already shown.
    sock = bind_listener(host, port)
    port = sock.getsockname()[1]
    app_host = None
    if apps:
        from host.cli.policy_cmd import _print_findings
        from host.runtime import Host, HostConfig
        from host.supervise.child import LayerMissing
        from policies.findings import FAILING
        from policies.loader import PolicyLoadError

        if pre_send_timeout not in ("fail-closed", "fail-open"):
            fail(f"--pre-send-timeout {pre_send_timeout!r} is not fail-closed or fail-open")
        config = HostConfig(degraded=degraded, pin_apps=pin_apps, pin_bursts=pin_bursts,
                            host_core=host_core, use_zygote=not fresh_interpreters,
                            pre_send_timeout="fail_closed" if pre_send_timeout == "fail-closed"
                            else "fail_open")
        try:
            app_host = Host(home, config=config).start()
        except LayerMissing as exc:
            sock.close()
            fail(str(exc), "run `stockade doctor`; or pass --degraded to accept the risk")
        except StartRefused as exc:
            sock.close()
            fail(exc.message, exc.hint, EXIT_NEGATIVE)
        except PolicyLoadError as exc:  # the home's policy set does not load: nothing served
            sock.close()
            _print_findings([f for f in exc.findings if f.severity in FAILING])
            fail(f"the policy in {home.policies_dir} does not load; nothing started",
                 f"`stockade policy check {home.policies_dir}` lists every finding; fix or "
                 "remove the file named above", EXIT_NEGATIVE)
        server = app_host.server  # one server: REST actions raise events for the apps
        running = sorted(r.app_id for r in app_host.runners.values())
        err_console.print(f"apps running: {', '.join(running) or 'none'}", highlight=False)
        if home.store_url is not None:
            from host.store import describe

            err_console.print(f"host store: {describe(home.store_url)} (shared; this host "
                              f"{app_host.host_id})", highlight=False)
    err_console.print(
        f"stockade server: http://{host}:{port}/api/v1/ (data: {home.server_db})", highlight=False
    )
    err_console.print(f"console: http://{host}:{port}/console/ (admins sign in with their "
                      "password)" + "".join(f"; as {o}/console/" for o in origins),
                      highlight=False)
    err_console.print("sign in: `stockade serve --mint-token NAME` prints an admin token "
                      "(X-User-Id + X-Auth-Token), or POST /api/v1/login {user, password}",
                      highlight=False)
    try:
        running = app_host

        def enforced() -> str | None:
            return running.policy.current().revision if running is not None else None

        if rest_process:
            import os

            from host.cli.serve_front import serve_front

            # The front process inherits them; a front restarted later too.
            os.environ[ORIGINS_ENV] = " ".join(origins)

            serve_front(home, sock, app_host, enforced, front_timeout, widget_rate, proxies,
                        hosts)
        else:
            console = Mount("/console", create_console(home, server, enforced,
                                                       origins=origins))
            # The console binds sessions to the TCP peer's account: `http_config` trusts no
            # forwarding header that could rename the peer (host.console.peer).
            serve_until_lease_lost(uvicorn.Server(http_config(
                create_app(server, mounts=[console], widget_rate=widget_rate,
                           trusted_proxies=proxies, hosts=hosts), host=host,
                port=port, log_level="warning",
                lifespan="off",
            )), app_host, sock)
    except Terminated:
        # SIGTERM (a service manager's stop) while serving: a stop that was asked for, which
        # ends `serve` with 0 once the `finally` below has stopped the host, as the REST
        # front's path ends (uvicorn raises the signal again after its own graceful stop).
        pass
    finally:
        sock.close()
        if app_host is not None:
            app_host.stop()
    exit_if_lease_lost(app_host)


def register(root: typer.Typer) -> None:
    """Mount this group's commands on the root CLI."""
    root.command("serve")(serve)
