"""The host's two background threads, each running a round every interval.

The upkeep round beats and sweeps the store lease, checkpoints the WALs (and anchors the audit
chain: `Ledger.checkpoint`), reads a workspace's seats back, opens store connections ahead of
the next app's start, kills an app's child that computes between events (`IdleWatch`), polls
the policy folder and publishes the apps' status for `app list`.
The watcher round notices other processes' changes (the CLI disabling, updating or
uninstalling an app; a key published or adopted; an app user deactivated) and makes the
running set match them (`Host.sync_installs`).

Both stay off the call path; `Rounds.stop` waits for a round under way before the host
closes what the round uses.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Protocol

from host.apps.installs import InstallStore
from host.gate.policywatch import PolicyWatch
from host.hostconfig import HostConfig
from host.keys.keyring import Keyring
from host.ledger.ledger import Ledger
from host.ledger.storelease import HostLease
from host.server.embedded import EmbeddedServer
from host.server.remote.server import RemoteServer, Workspace
from host.store.pool import Pooled, releasing
from host.supervise.credentials import APP_USER_CHECK_EVERY, Credentials
from host.supervise.status import PUBLISH_INTERVAL_S
from host.supervise.supervisor import AppRunner
from host.supervise.watchdog import IdleWatch

WATCH_INTERVAL_S = 0.2
# A sync that raised is tried again this many watcher ticks later (about a second), not at
# every tick: guards the host's core against a failure that lasts (each try reads every install).
RETRY_TICKS = 5
CHECKPOINT_INTERVAL_S = PUBLISH_INTERVAL_S  # one upkeep thread: checkpoints and status
# How long `stop` waits for the upkeep's or the watcher's round to end (a checkpoint of a long
# WAL, a workspace's seat read-back: each call under 4.5 s); past it the host stops anyway and
# says so.
ROUND_JOIN_S = 10.0
log = logging.getLogger("stockade.host")


class Kept(Protocol):
    """What the rounds use of the host they keep (`host.runtime.Host`)."""

    @property
    def config(self) -> HostConfig: ...
    @property
    def keyring(self) -> Keyring: ...
    @property
    def installs(self) -> InstallStore: ...
    @property
    def credentials(self) -> Credentials: ...
    @property
    def runners(self) -> Mapping[str, AppRunner]: ...
    @property
    def lease(self) -> HostLease: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def server(self) -> Workspace: ...
    @property
    def policy_watch(self) -> PolicyWatch: ...
    def pooled_stores(self) -> list[Pooled]: ...
    def sync_installs(self, *, wait_hooks: bool = True) -> None: ...
    def publish_status(self) -> None: ...


class Rounds:
    """The upkeep thread and (when the host watches) the install watcher of one host."""

    def __init__(self, host: Kept) -> None:
        self.host = host
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watch_version = -1
        self._keys_seen = host.keyring.changes  # at the watcher's last look
        # The jtis of the running children whose tokens the watcher found not revoked once
        # they were up (a sync skips a starting runner: a revocation landing then is found
        # here, one registry read per new session).
        self._tokens_checked: set[str] = set()
        self.idle = IdleWatch()  # the upkeep's: apps' children computing between events
        self._failed_at: int | None = None  # the watcher's tick whose sync raised
        self._failure = ""  # what it raised (logged once)
        self._retry = False  # `retry_soon`: sync at the next tick

    def start(self, *, watch: bool) -> None:
        rounds = [(self._watch, "stockade-watch")] if watch else []
        for target, name in [*rounds, (self._upkeep, "stockade-upkeep")]:
            # `releasing`: the thread's connections go back to the pools as it ends (the
            # embedded server's, untracked, were dropped unclosed: open until a collection).
            self._threads.append(threading.Thread(target=releasing(target), name=name,
                                                  daemon=True))
            self._threads[-1].start()

    def stop(self) -> None:
        """No round starts after this; one under way ends before this returns (or it would
        poll a closed ledger, reopen store connections, start an app on a stopped host)."""
        self.stopping.set()
        for thread in self._threads:
            if thread is threading.current_thread():
                continue
            thread.join(ROUND_JOIN_S)
            if thread.is_alive():
                log.warning("%s still running %g s after stop", thread.name, ROUND_JOIN_S)

    def warm_stores(self) -> None:
        """Connections opened ahead of the next app's start (`host.store.pool`): a runner's
        start and first calls then open none, as the spawner keeps children ready."""
        try:
            for store in self.host.pooled_stores():
                store.warm(self.host.config.prefork)
        except Exception:
            log.exception("could not open store connections ahead of need")

    def _upkeep(self) -> None:
        """Lease beats, WAL checkpoints, anchors (off the call path), apps' children computing
        between events (`IdleWatch`), and `app list`'s status."""
        host = self.host
        self.warm_stores()
        while not self.stopping.wait(CHECKPOINT_INTERVAL_S):
            self.warm_stores()  # a start since took some
            # Each on its own: a sweep that cannot settle a dead host's calls (the workspace
            # cannot say whether they applied) skipped the anchoring every round, and records
            # appended meanwhile were pinned by no anchor.
            for chore, said in ((host.lease.sweep, "sweep the lease"),
                                (host.ledger.checkpoint, "checkpoint and anchor the audit chain"),
                                (self._server_checkpoint, "checkpoint the server"),
                                (self._ask_again, "ask again about calls with unknown outcomes")):
                try:
                    chore()
                except Exception:
                    log.exception("could not %s", said)
            if self.stopping.is_set():
                return  # `stop` waits for this round: it ends here, not after the poll
            try:
                # a copy: `sync_installs` changes the running set from other threads
                self.idle.round(dict(host.runners))
            except Exception:
                log.exception("could not look for apps computing between events")
            # Each step on its own: nothing one raises (a store error of any kind) may end the
            # thread, whose lease beats keep this host admitting calls.
            for step, what in ((host.policy_watch.poll, "look for a policy change"),
                               (host.publish_status, "publish the apps' status")):
                try:
                    step()
                except Exception:
                    log.exception("could not %s", what)

    def retry_soon(self) -> None:
        """What a sync started failed after the sync returned (an ending app's hook could not
        be marked done): the watcher syncs again at its next tick."""
        self._retry = True

    def _ask_again(self) -> None:
        """Settle this host's ended calls whose outcome the server could not say when they
        failed (its store was down: `host.ledger.unsettled`), now that it may."""
        ledger = self.host.ledger
        if len(ledger.unsettled):
            ledger.unsettled.settle(ledger, self.host.server.was_applied)

    def _server_checkpoint(self) -> None:
        server = self.host.server
        if isinstance(server, EmbeddedServer):
            server.db.checkpoint()
        elif isinstance(server, RemoteServer):
            server.checkpoint()  # seats read back from the workspace

    def _revoked_since_start(self) -> bool:
        """Whether a child that is up holds a token revoked while it was starting."""
        host = self.host
        up = {r.session.claims.jti for r in list(host.runners.values())
              if r.session is not None and r.state != "starting"}
        revoked = {jti for jti in up - self._tokens_checked if host.credentials.revoked(jti)}
        self._tokens_checked = up - revoked  # a revoked one is looked at again until gone
        return bool(revoked)

    def _watch(self) -> None:
        host = self.host
        tick = 0
        while not self.stopping.wait(WATCH_INTERVAL_S):
            tick += 1
            try:
                host.keyring.refresh()  # and the upkeep may have adopted a published key
                keys_changed = host.keyring.changes != self._keys_seen
                self._keys_seen = host.keyring.changes
                version = host.installs.data_version()
                users_changed = tick % APP_USER_CHECK_EVERY == 0 and bool(
                    host.credentials.inactive_users(host.runners))
                # A child whose token a retired key signed, started since the sync that saw the
                # retirement (that sync skips a runner still starting), or whose token expires
                # (nothing else changes then): started again now, with a fresh token.
                retired = host.keyring.retired
                held = any(r.session is not None and r.state != "starting"
                           and (r.session.claims.kid in retired
                                or host.credentials.expiring(r.session))
                           for r in list(host.runners.values()))
                held = self._revoked_since_start() or held
                retry = self._retry or (self._failed_at is not None
                                        and tick - self._failed_at >= RETRY_TICKS)
                if (version != self._watch_version or keys_changed or users_changed or held
                        or retry):
                    self._retry = False
                    host.sync_installs(wait_hooks=False)
                    # Seen only once a sync went through: one that raised (a store locked past
                    # its busy timeout) is tried again, not left until an unrelated change.
                    self._watch_version, self._failed_at, self._failure = version, None, ""
            except Exception as exc:
                self._failed_at = tick
                said = f"{type(exc).__name__}: {exc}"
                if said != self._failure:  # once per distinct failure, not every retry
                    self._failure = said
                    log.exception("install watcher: could not sync installs (trying again)")
