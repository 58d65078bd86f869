"""`stockade serve`: run the embedded chat server's REST API on loopback.

The lead's app host reuses `build_server(home, clock)` to open the same server in-process.
"""
from __future__ import annotations

import ipaddress

import typer

from host.cli.output import EXIT_USAGE, emit_json, err_console, fail
from host.clock import Clock, SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.personal_tokens import ensure_service_user
from host.server.shapes import User


def build_server(home: Home, clock: Clock) -> EmbeddedServer:
    """Open (creating if needed) the embedded server in `home` (HOME/server.db)."""
    home.ensure()
    return EmbeddedServer(home.server_db, clock)


def mint_service_token(server: EmbeddedServer, username: str) -> tuple[User, str]:
    """Create (or reuse) the admin service user `username` and mint a new REST token for it.
    The token is returned once and stored only as a digest."""
    return ensure_service_user(server, username)


def is_loopback(host: str) -> bool:
    """Whether `host` names a loopback address (the only binds `serve` accepts)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to bind."),
    port: int = typer.Option(3000, "--port", min=0, max=65535, help="TCP port (0: any free)."),
    mint_token: str = typer.Option(
        None, "--mint-token", metavar="USERNAME",
        help="Create/reuse admin service user USERNAME, print a new token once, and exit.",
    ),
    json_out: bool = typer.Option(False, "--json", help="With --mint-token: JSON on stdout."),
) -> None:
    """Serve the embedded server's Rocket.Chat-style REST API (/api/v1/...) on loopback."""
    home: Home = ctx.obj
    if not is_loopback(host):
        fail(
            f"refusing to bind {host!r}: the REST API speaks plain HTTP with bearer tokens, so it "
            "listens on loopback only",
            hint="bind 127.0.0.1 (or ::1) and put a TLS reverse proxy in front for remote access",
            code=EXIT_USAGE,
        )
    server = build_server(home, SystemClock())
    if mint_token is not None:
        try:
            user, token = mint_service_token(server, mint_token)
        except Exception as e:  # ServerError: bad username etc.
            fail(f"cannot mint a token for {mint_token!r}: {e}", hint="usernames: 3..64 of "
                 "letters, digits, '.', '_', '-'")
        if json_out:
            emit_json({"user_id": user["id"], "username": user["username"], "token": token})
        else:
            err_console.print(
                f"token for {user['username']} (X-User-Id: {user['id']}); shown only once:",
                highlight=False,
            )
            typer.echo(token)
        return
    import uvicorn

    from host.server.rest import create_app

    err_console.print(
        f"stockade server: http://{host}:{port}/api/v1/ (data: {home.server_db})", highlight=False
    )
    uvicorn.Server(uvicorn.Config(
        create_app(server), host=host, port=port, log_level="warning", lifespan="off",
    )).run()


def register(root: typer.Typer) -> None:
    """Mount this group's commands on the root CLI."""
    root.command("serve")(serve)
