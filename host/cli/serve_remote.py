"""`stockade serve --server rocketchat`: the installed apps served against a Rocket.Chat
workspace (`host/server/remote/`), with the webhook receiver on loopback (docs/ROCKETCHAT.md).
"""
from __future__ import annotations

import socket

from host.cli.interrupt import Terminated
from host.cli.output import EXIT_NEGATIVE, EXIT_USAGE, err_console, fail
from host.clock import SystemClock
from host.errors import StartRefused
from host.home import Home
from host.inert import line
from host.runtime import HostConfig


def serve_remote(home: Home, bind: str, sock: socket.socket, url: str | None,
                 origins: list[str], config: HostConfig) -> None:
    """Serve on `sock` until interrupted; every failure to start is one line for the
    operator. `origins`: those a reverse proxy serves the console as (`--console-origin`)."""
    import uvicorn
    from starlette.routing import Mount

    from host.cli.serve_lease import exit_if_lease_lost, serve_until_lease_lost
    from host.console.app import create_console
    from host.console.operators import WorkspaceOperators
    from host.runtime import Host
    from host.server.errors import ServerError
    from host.server.listen import http_config
    from host.server.remote.config import ConfigError, load, open_remote
    from host.server.remote.receiver import PATH, WebhookReceiver
    from host.supervise.child import LayerMissing

    try:
        conf = load(home, url=url)
        remote = open_remote(home, SystemClock(), url=url)
    except ConfigError as exc:
        sock.close()
        fail(str(exc), code=EXIT_USAGE)
    try:
        version = remote.client.info().get("version", "unknown")
    except ServerError as exc:
        remote.close()
        sock.close()
        fail(f"cannot reach the workspace: {exc.message}",
             "check the URL and `stockade rocketchat check`", EXIT_NEGATIVE)
    port = sock.getsockname()[1]
    try:
        app_host = Host(home, config=config, server=remote).start()
    except (LayerMissing, StartRefused) as exc:
        sock.close()
        remote.close()
        if isinstance(exc, StartRefused):
            fail(exc.message, exc.hint, EXIT_NEGATIVE)
        fail(str(exc), "run `stockade doctor`; or pass --degraded to accept the risk")
    receiver = WebhookReceiver(remote, conf.webhook_secret).start()
    console = Mount("/console", create_console(
        home, WorkspaceOperators(remote), lambda: app_host.policy.current().revision,
        origins=origins))
    running = sorted(r.app_id for r in app_host.runners.values())
    err_console.print(f"apps running: {', '.join(running) or 'none'}", highlight=False)
    # The version is what the workspace says of itself (`GET /api/info`): inert, on this line
    # (DESIGN rule 12), as `rocketchat check` and `doctor` show it.
    err_console.print(line(f"workspace: {conf.url} (Rocket.Chat {version}) as {conf.user_id}"))
    err_console.print(f"webhook receiver: http://{bind}:{port}{PATH} (behind a TLS proxy, "
                      "this is the workspace's Omnichannel Webhook URL)", highlight=False)
    err_console.print(f"console: http://{bind}:{port}/console/ (the workspace's admins sign "
                      "in with their Rocket.Chat password)", highlight=False)
    try:
        # The header block capped in size and time, as on every listener (host/server/listen.py);
        # no forwarding header renames the peer the console binds sessions to (console.peer).
        serve_until_lease_lost(uvicorn.Server(http_config(
            receiver.app([console]), log_level="warning", lifespan="off")), app_host, sock)
    except Terminated:
        pass  # a stop asked for: exit 0 once the host is stopped (as in `serve_cmd.serve`)
    finally:
        sock.close()
        receiver.stop()
        app_host.stop()
        remote.close()
    exit_if_lease_lost(app_host)
