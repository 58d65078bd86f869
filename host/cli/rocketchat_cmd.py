"""`stockade rocketchat connect|check`: connect the home to a Rocket.Chat workspace as the
operator's service account, and check that connection (docs/ROCKETCHAT.md)."""
from __future__ import annotations

import typer

from host.cli.ask import secret_line
from host.cli.output import EXIT_NEGATIVE, EXIT_USAGE, emit_json, err_console, fail
from host.clock import SystemClock
from host.home import Home
from host.inert import line

rocketchat = typer.Typer(help="Connect the home to a Rocket.Chat workspace.", no_args_is_help=True)


@rocketchat.command("connect")
def connect(
    ctx: typer.Context,
    url: str = typer.Option(..., "--url", help="The workspace, e.g. https://chat.example.com"),
    user_id: str = typer.Option(..., "--user-id", help="The service account's user id."),
    json_out: bool = typer.Option(False, "--json", help="JSON on stdout."),
    insecure_plain_http: bool = typer.Option(
        False, "--insecure-plain-http",
        help="Accept a plain http:// URL to another machine (the token crosses the network "
             "readable). Without it only https:// or loopback http:// is accepted."),
) -> None:
    """Store the service account's personal access token (stdin, first line), the workspace's
    CREATE_TOKENS_FOR_USERS_SECRET for Rocket.Chat 8+ (stdin, second line, optional) and a new
    webhook secret in the home (0600); print the webhook secret once, for the workspace's
    Omnichannel > Webhooks settings."""
    from host.ledger.operator import audited
    from host.server.remote.config import save, secret_path, transport_problem

    home: Home = ctx.obj
    problem = transport_problem(url, insecure_plain_http=insecure_plain_http)
    if problem:
        fail(problem, code=EXIT_USAGE)
    # Never on the screen either: at a terminal neither line is echoed (`ask.secret_line`).
    token = secret_line("the service account's personal access token (not shown): ").strip()
    # Never an option: a command line is readable by every local user (ps) and kept in shell
    # history. Rocket.Chat 8+ refuses users.createToken (messages sent as an app's user)
    # without it.
    tokens_secret = secret_line("the workspace's CREATE_TOKENS_FOR_USERS_SECRET (Rocket.Chat "
                                "8+; empty if none; not shown): ").strip()
    if not token:
        fail("no token on stdin", "pipe the service account's personal access token in: "
             "`stockade rocketchat connect --url URL --user-id ID < token.txt`", EXIT_USAGE)
    home.ensure()
    # Rule 14: connecting the home to a workspace is an operator record (never the token).
    with audited(home.host_store, "rocketchat_connect", clock=SystemClock(),
                 detail=f"workspace {url[:200]} as user {user_id[:64]}"
                 + (" with a users.createToken secret" if tokens_secret else "")
                 + (" over plain http (--insecure-plain-http)" if insecure_plain_http
                    and url.startswith("http://") else "")):
        conf = save(home, url.rstrip("/"), user_id, token, create_tokens_secret=tokens_secret,
                    insecure_plain_http=insecure_plain_http)
    if json_out:
        emit_json({"url": conf.url, "user_id": conf.user_id,
                   "webhook_secret": conf.webhook_secret, "secret_file": str(secret_path(home)),
                   "create_tokens_secret_stored": bool(tokens_secret)})
        return
    # What the operator typed (or pasted) comes back inert: an escape in a pasted user id
    # reached the terminal raw.
    err_console.print(line(f"connected {home.root} to {conf.url} as {conf.user_id}; token "
                           + ("and users.createToken secret " if tokens_secret else "")
                           + f"stored in {secret_path(home)} (0600)"))
    if not tokens_secret:
        err_console.print("no users.createToken secret given (stdin's second line): Rocket.Chat "
                          "8+ needs its CREATE_TOKENS_FOR_USERS_SECRET for apps to send "
                          "messages; `stockade rocketchat check` tests it", highlight=False)
    err_console.print("webhook secret (Omnichannel > Webhooks > Secret Token), shown once:",
                      highlight=False)
    typer.echo(conf.webhook_secret)


@rocketchat.command("check")
def check(ctx: typer.Context,
          json_out: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """The connection, the server's version and the service account's permissions: exactly
    what Stockade needs, and any extra power (exit 1 when something is missing or too wide)."""
    from host.server.remote.config import ConfigError, open_remote
    from host.server.remote.permcheck import check_account

    home: Home = ctx.obj
    try:
        remote = open_remote(home, SystemClock())
    except ConfigError as exc:
        fail(str(exc), code=EXIT_USAGE)
    try:
        report = check_account(remote)
    finally:
        remote.close()
    if json_out:
        emit_json(report.to_json())
    else:
        for line in report.lines():
            err_console.print(line, highlight=False, markup=False)
    raise typer.Exit(0 if report.ok else EXIT_NEGATIVE)


def register(root: typer.Typer) -> None:
    root.add_typer(rocketchat, name="rocketchat")
