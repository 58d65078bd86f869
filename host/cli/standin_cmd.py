"""`stockade standin`: the embedded server as a stand-in Rocket.Chat workspace, in its own
process: its REST API on loopback and Rocket.Chat's omnichannel webhooks sent to a URL
(`host/server/remote/standin.py`). What `stockade serve --server rocketchat` and
`stockade demo --server rocketchat` are tested against; docs/ROCKETCHAT.md says what was
verified only here.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import typer

from host.cli.output import EXIT_USAGE, emit_json, err_console, fail
from host.clock import SystemClock
from host.home import Home


def standin(
    ctx: typer.Context,
    port: int = typer.Option(0, "--port", min=0, max=65535, help="TCP port (0: any free)."),
    webhook_url: str = typer.Option(None, "--webhook-url", help="Where to send webhooks."),
    webhook_token_file: Path = typer.Option(
        None, "--webhook-token-file", help="File holding the webhook's secret token."),
    webhook_retry_s: float = typer.Option(
        10.0, "--webhook-retry-s", min=0.0, help="Wait between webhook retries (Rocket.Chat: "
        "10 s)."),
    webhook_retries: int = typer.Option(10, "--webhook-retries", min=0,
                                        help="Retries on a non-200 answer (Rocket.Chat: 10)."),
    webhook_concurrency: int = typer.Option(
        1, "--webhook-concurrency", min=1, max=256, help="Webhooks sent at once (1: one at a "
        "time, in order; Rocket.Chat sends each on its own, so a busy workspace's burst "
        "arrives many at once)."),
    ready_file: Path = typer.Option(None, "--ready-file",
                                    help="Write {url, pid} here once listening."),
    faults: bool = typer.Option(False, "--faults", help="Accept POST /_standin/faults "
                                "(tests: slow routes, 429, 5xx)."),
    json_out: bool = typer.Option(False, "--json", help="Once listening, write {url, pid, "
                                  "data} on stdout."),
    parent_pid: int = typer.Option(0, "--parent-pid", min=0, hidden=True,
                                   help="Exit when this process, its parent, exits."),
) -> None:
    """Run the embedded server as a stand-in Rocket.Chat workspace (REST + webhooks)."""
    if parent_pid:
        _exit_with_parent(parent_pid)
    import uvicorn

    from host.server.embedded import EmbeddedServer
    from host.server.listen import tcp_listener
    from host.server.remote.standin import Faults, Status, WebhookSender
    from host.server.rest import create_app

    home: Home = ctx.obj
    home.ensure()
    server = EmbeddedServer(home.server_store, SystemClock())
    sender = None
    if webhook_url:
        if webhook_token_file is None:
            fail("--webhook-url needs --webhook-token-file", code=EXIT_USAGE)
        try:
            secret = webhook_token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--webhook-token-file {webhook_token_file} cannot be read "
                 f"({getattr(exc, 'strerror', None) or exc})",
                 "pass a file holding the webhook secret `rocketchat connect` printed",
                 EXIT_USAGE)
        if not secret:
            # Webhooks signed with nothing: the receiver would refuse every one (401).
            fail(f"--webhook-token-file {webhook_token_file} is empty",
                 "pass a file holding the webhook secret `rocketchat connect` printed",
                 EXIT_USAGE)
        sender = WebhookSender(server, webhook_url, secret, retries=webhook_retries,
                               spacing_s=webhook_retry_s, concurrency=webhook_concurrency)
    try:
        sock = tcp_listener("127.0.0.1", port)
    except OSError as exc:
        fail(f"port {port} cannot be bound ({exc.strerror})", code=EXIT_USAGE)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # No widget rate limit: the stand-in serves tests, demos and benches, whose visitors all
    # come from this machine's one address (its own `rate-limit` fault plays Rocket.Chat's).
    app = Status(create_app(server, widget_rate=0), sender)
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        tmp.replace(ready_file)
    if json_out:
        emit_json({"url": url, "pid": os.getpid(), "data": str(home.server_db)})
    else:
        err_console.print(f"stand-in workspace: {url}/api/v1/ (data: {home.server_db})",
                          highlight=False)
    try:
        uvicorn.Server(uvicorn.Config(Faults(app) if faults else app, log_level="warning",
                                      lifespan="off")).run(sockets=[sock])
    finally:
        sock.close()
        if sender is not None:
            sender.close()


# prctl option (linux/prctl.h): the signal this process gets when the thread that started it
# exits.
PR_SET_PDEATHSIG = 1


def _exit_with_parent(parent: int) -> None:
    """Be killed when `parent` (the demo or bench that started this stand-in) exits, however
    it exits. The demo starts it in a session of its own, so a Ctrl-C is the demo's to handle:
    a demo killed (SIGTERM, SIGKILL, a crash) ran no `finally`, and left the stand-in listening
    for good, an admin's token in its data. SIGKILL: the stand-in has nothing to save."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        fail(f"cannot arm the parent-death signal ({os.strerror(ctypes.get_errno())})")
    if os.getppid() != parent:  # it exited before the signal was armed
        raise typer.Exit(0)


def register(root: typer.Typer) -> None:
    root.command("standin")(standin)
