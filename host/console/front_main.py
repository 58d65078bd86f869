"""The front process `stockade serve` starts (`host.server.front`): the REST API with the
console mounted beside it at `/console`, as `serve --rest-in-host` mounts it in its own process.
`python -m host.console.front_main LINK LISTEN`; the console asks the host over the link which
policy revision it enforces. The front's listener trusts no forwarding header
(`host.console.peer`): a session is bound to the TCP peer's local account."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute, Mount

from host.console.app import create_console
from host.console.origins import ORIGINS_ENV, parse_origin
from host.console.pages import EnforcedUnknown
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.front_proc import ENFORCED_WAIT_S, HostCalls, main
from host.server.frontlink import LinkBroken


def console_mount(home: Home, server: EmbeddedServer, calls: HostCalls) -> Sequence[BaseRoute]:
    # `serve --console-origin`, as `serve` passed them on (checked there; again here).
    origins = [parse_origin(o) for o in os.environ.get(ORIGINS_ENV, "").split()]
    return [Mount("/console", create_console(home, server, _enforced(calls), origins=origins))]


def _enforced(calls: HostCalls) -> Callable[[], str | None]:
    """The host's revision over the link. A host that does not answer (busy past the wait, or
    its link gone) raises EnforcedUnknown: the page says it cannot tell, never "no host runs
    apps" (`HostCalls.enforced` answers None for both)."""
    def ask() -> str | None:
        try:
            out = calls.call("enforced", None, ENFORCED_WAIT_S).get("ok")
        except (LinkBroken, TimeoutError) as exc:
            raise EnforcedUnknown(f"the serving host did not answer: {exc}") from None
        return out if isinstance(out, str) else None
    return ask


if __name__ == "__main__":
    sys.exit(main(sys.argv, console_mount))
