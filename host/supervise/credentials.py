"""What a running app's credentials depend on: its token's registry row, the host keys, its user.

The serving host (`host/runtime.py`) asks here whether a child's token is stale (revoked in the
registry, or signed by a host key retired since), whether an app may get a token at all (its own
server user must be active), and records each token before the child sees it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from host.apps.installs import InstallRecord
from host.clock import Clock
from host.gate.gate import Session
from host.keys import tokens
from host.keys.keyring import Keyring
from host.keys.registry import TokenRegistry
from host.server.errors import NotFound, ServerError
from host.server.principals import SYSTEM, Caller
from host.server.remote.server import Workspace
from host.supervise.child import Child, ChildDied
from host.supervise.supervisor import AppRunner

log = logging.getLogger(__name__)

# How often the watcher asks the server whether a running app's own user is still active (one
# look-up per running app): bounds how long a deactivated app user's child keeps its token.
APP_USER_CHECK_EVERY = 5  # watcher ticks
# The host's log says a server that cannot answer for an app user at most this often per user
# (it is asked again every look, about once a second): the log is not filled while it is away.
UNSURE_LOG_EVERY_S = 60.0
# A running child's token is renewed (the child started again with a fresh one) this long
# before its `exp`, at most a quarter of its lifetime: the gate refuses every call after `exp`,
# so without renewal an app stopped working a day after its start (or at a forward clock step).
RENEW_BEFORE_S = 300.0


class Credentials:
    def __init__(self, keyring: Keyring, registry: TokenRegistry, server: Workspace,
                 clock: Clock, host_id: str) -> None:
        self.keyring, self.registry, self.server = keyring, registry, server
        self.clock, self.host_id = clock, host_id
        self._unsure_said: dict[str, float] = {}  # app user -> when "cannot tell" was logged

    def stale(self, session: Session | None, epoch: int) -> bool:
        """A retired host key verifies nothing, tokens already accepted included; a revoked
        token stays revoked, and so does every token of an earlier `epoch` (the install store's,
        bumped to revoke them all); an expiring token is refused soon: the child holding any of
        them is started again with a fresh token (else it ran on, handed every event's data)."""
        if session is None:
            return False
        claims = session.claims
        return claims.kid in self.keyring.retired or claims.epoch != epoch \
            or self.expiring(session) or self.registry.is_revoked(claims.jti)

    def revoked(self, jti: str) -> bool:
        """Whether the registry says the token `jti` is revoked (for good)."""
        return self.registry.is_revoked(jti)

    def expiring(self, session: Session | None) -> bool:
        """Whether `session`'s token expires within its renewal margin (or has expired, the
        host clock having stepped past it): no store read, so the watcher asks every tick."""
        if session is None:
            return False
        claims = session.claims
        margin = min(RENEW_BEFORE_S, max(claims.exp - claims.iat, 0.0) / 4)
        return self.clock.now() >= claims.exp - margin

    def user_active(self, user_id: str) -> bool:
        try:
            return bool(self.server.users_get(SYSTEM, user_id)["active"])
        except NotFound:
            return False

    def inactive_users(self, runners: Mapping[str, AppRunner]) -> set[str]:
        """The running apps' own users that the server says are deactivated. A user the server
        cannot answer for now (down, slow) is asked again at the next look: the question raised
        out of the whole sync before, and no disable, revocation or retirement stopped a child
        while the server was away."""
        users = {r.install.app_user_id for r in list(runners.values()) if r.session}
        inactive: set[str] = set()
        for u in users:
            if u is None:
                continue
            try:
                if not self.user_active(u):
                    inactive.add(u)
            except ServerError as exc:
                now = time.monotonic()
                if now - self._unsure_said.get(u, -UNSURE_LOG_EVERY_S) >= UNSURE_LOG_EVERY_S:
                    self._unsure_said[u] = now
                    log.warning("cannot tell whether app user %s is active: %s", u[:64],
                                type(exc).__name__)
            else:
                self._unsure_said.pop(u, None)
        return inactive

    def revoke_for_user(self, install_id: str) -> None:
        self.registry.revoke(install_id, self.clock.now(), "app user deactivated")

    def may_mint(self, app_id: str, install_id: str, app_user_id: str | None) -> None:
        """No token for an app whose own user is deactivated; its old ones stay revoked."""
        if app_user_id is not None and not self.user_active(app_user_id):
            self.revoke_for_user(install_id)
            raise ChildDied(f"{app_id}: its app user is deactivated", "stopped")

    def record(self, claims: tokens.Claims) -> None:
        """Recorded before the child sees the token: re-minting revokes this host's earlier
        token."""
        self.registry.minted(claims, self.host_id)


def make_session(install: InstallRecord, child: Child, claims: tokens.Claims) -> Session:
    """The gate's session for `child`: the install it runs, its token's claims, its caller."""
    return Session(
        app_id=install.app_id, install_id=install.install_id, session_id=child.session_id,
        claims=claims, grants=install.grants,
        caller=Caller(app_id=install.app_id, install_id=install.install_id,
                      app_user_id=install.app_user_id),
    )



