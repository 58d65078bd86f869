"""The host process: every trusted part wired together.

`Host(home).start()` opens the stores, reconciles any call that was audited but never
finished (a crash between audit and server), starts the zygote from the calling thread (it
must be a long-lived thread: the zygote's parent-death signal follows it), starts a runner per
enabled install, and connects the server's events and pre-send hook to the apps.

Two background threads (`host.rounds`) keep it: the upkeep (lease, checkpoints, anchors,
policy poll, status) and a watcher that notices other processes' changes (the CLI disabling,
updating or uninstalling an app; an epoch bump) by the install store's change counter, and
stops or starts children.
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from typing import Any

from host.apps.app_agent import ensure_app_user_agent
from host.apps.consent import signed_view, verify_install
from host.apps.installs import InstallRecord, InstallStore
from host.apps.published import follower_for
from host.bridges.httpout import system_resolver
from host.bridges.persistence import gate_store_calls
from host.clock import Clock, SystemClock
from host.errors import StartRefused
from host.gate.eventpolicy import EventPolicy
from host.gate.gate import Gate, PolicySource
from host.gate.policywatch import PolicyWatch
from host.home import Home, ensure_policies
from host.hostconfig import HostConfig as HostConfig  # re-exported: callers configure a Host here
from host.hostevents import HostEvents
from host.keys import tokens
from host.keys.registry import TokenRegistry
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.operator import append_operator, audit_policy_load, open_keyring, operator_actor
from host.ledger.storelease import HostLease
from host.ledger.verify import PROGRESS_EVERY
from host.rounds import CHECKPOINT_INTERVAL_S, ROUND_JOIN_S, Rounds
from host.server.embedded import EmbeddedServer
from host.server.errors import ServerError
from host.server.remote.server import RemoteServer, Workspace, foreign_app_user
from host.store import opening_stores, refuse_damaged_stores
from host.store.pool import Pooled
from host.supervise import applog
from host.supervise.affinity import Affinity
from host.supervise.appcode import AppCode, PackageTampered
from host.supervise.burst import loaded, patient_load
from host.supervise.child import Child, ChildDied
from host.supervise.credentials import Credentials, make_session
from host.supervise.gctune import tune_gc, untune_gc
from host.supervise.handover import hand_over
from host.supervise.identities import Identities
from host.supervise.lifehooks import LifeHooks
from host.supervise.pump import EventPump
from host.supervise.served import HostServed
from host.supervise.spawner import Spawner
from host.supervise.status import StatusBoard
from host.supervise.supervisor import AppRunner, Job
from policies.loader import load_policy

ANCHOR_EVERY_IN_HOST = 4096  # backstop only; the upkeep thread anchors every interval
log = logging.getLogger("stockade.host")
# A start walks the whole audit chain first (`_check_chain`, ~6 s a million records here): it
# says how far it is every this many records, so a long chain's start is not a silent minute.
START_PROGRESS_EVERY = PROGRESS_EVERY


class Host(HostEvents):
    def __init__(self, home: Home, *, clock: Clock | None = None,
                 config: HostConfig | None = None, server: Workspace | None = None) -> None:
        """`server`: the workspace the apps reach (default: the embedded server in the home;
        a `RemoteServer` for a Rocket.Chat workspace, whose events its webhook receiver
        delivers)."""
        self.home = home.ensure()
        self.clock = clock or SystemClock()
        self.config = config or HostConfig()
        # Names this host's tokens (a re-mint revokes only its own earlier token) and its calls
        # in flight (a host sharing a store settles a dead host's: `host.ledger.storelease`).
        self.host_id = secrets.token_hex(8)
        # Hosts sharing a chain load their own policy folders: say which host loaded what.
        self._on_host = f" on host {self.host_id}" if home.store_url else ""
        refuse_damaged_stores(home)
        ensure_policies(home)
        with opening_stores(home):  # read-only, immutable, full: one clear refusal
            self.installs = InstallStore(home.host_store)
            # A running host anchors the audit chain from its upkeep thread (every
            # CHECKPOINT_INTERVAL_S and at stop), not every 64 records on a bridge call: the
            # anchor write is a file rename that would stall the call for a millisecond.
            self.ledger = Ledger(home.host_store, self.clock, anchor_every=ANCHOR_EVERY_IN_HOST,
                                 group_reads=self.config.group_reads, host_id=self.host_id)
            self.status_board = StatusBoard(home.host_store, os.getpid(), self.host_id)
            self.server: Workspace = server or EmbeddedServer(home.server_store, self.clock)
            self.keyring = open_keyring(home, self.clock)
            self.tokens = TokenRegistry(home.host_store)
            self.identities = Identities(home.host_store)  # each install's own uid (root hosts)
            self.credentials = Credentials(self.keyring, self.tokens, self.server, self.clock,
                                           self.host_id)
        self.policy_follower = follower_for(home, self.keyring, self._record)
        self.policy = PolicySource(load_policy(home.policies_dir))
        self.policy_watch = PolicyWatch(
            self.policy, home.policies_dir, self._record, sync=self.policy_follower,
            exclusive=self.ledger.batch.exclusive if self.ledger.batch is not None else None)
        self.resolve = system_resolver(self.config.resolver_overrides)
        served = HostServed(home.host_store, self.config.http_deadline_s, self.server,
                            self.installs, self.keyring)
        self.persistence, self.httpout = served.persistence, served.httpout  # pooled
        self.gate = served.gate = Gate(
            server=self.server, ledger=self.ledger, installs=self.installs, policy=self.policy,
            clock=self.clock, host_actions=served.actions(), store_calls=gate_store_calls(),
            audit_reads=self.config.audit_reads, resolve=self.resolve,
        )
        self.runners: dict[str, AppRunner] = {}
        self.app_code = AppCode()  # the stored packages' modules, checked at every start
        self.affinity = Affinity(enabled=self.config.pin_apps or self.config.pin_bursts,
                                 always=self.config.pin_apps, host_core=self.config.host_core)
        # Each event's receivers, in app-id order. Replaced by an empty dict (never cleared in
        # place) after any change to the running set or a runner's install record, so a
        # narrowed grant takes effect at once: a look-up that raced the change stores its
        # answer in the dict it started from, which is no longer the host's.
        self._receivers_cache: dict[str, tuple[AppRunner, ...]] = {}
        # The policy the cache was built under: a reload swaps the object, and the cache goes.
        self._receivers_policy = self.policy.current()
        self.event_policy = EventPolicy()  # what the policy lets each event reach
        self.spawner: Spawner | None = None
        self.pump: EventPump | None = None
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()  # `sync_installs`: its reads and its match, alone
        self.rounds = Rounds(self)  # upkeep and watcher threads (`host.rounds`)
        self._unsubscribe: Any = None
        self._waiting: dict[str, tuple[str, bool]] = {}  # install -> its consent checked
        self._user_waits: dict[str, str] = {}  # install -> why it has no app user (said once)
        self.event_counts: dict[str, int] = {}
        self.loop_stops = 0  # events past MAX_EVENT_DEPTH, not delivered (`HostEvents`)
        # Lifecycle hooks, and the ending of disabled and uninstalled apps' runners outside the
        # lock (their hook runs first; the watcher waits for none); `stop` ends them too.
        self.hooks = LifeHooks(self.installs, self.config.event_deadline_s, self._stop_runner,
                               self.rounds.retry_soon)
        sweep_s = max(self.config.lease_sweep_s, CHECKPOINT_INTERVAL_S)  # upkeep's cadence
        # Set (with why) once this host's lease on a shared store is lost: it admits no more
        # calls, and `serve` exits so that a restart takes a new lease (`_lease_lost`).
        self.lease_lost = threading.Event()
        self.lease_lost_why = ""
        # The stores through which this host acts on a call: on a shared store, their writes
        # are refused once a survivor has taken this host's lease away and settled its calls
        # (a remote workspace's: the record of a write about to be sent, `rc_ops`).
        served_by = ((self.server.db,) if isinstance(self.server, EmbeddedServer) else
                     (self.server.owned.store,) if isinstance(self.server, RemoteServer) else ())
        self.lease = HostLease(home, self.host_id, self.clock, self._settle,
                               sweep_interval_s=sweep_s, on_lost=self._lease_lost,
                               on_beat=self.ledger.admit_until,
                               fenced=(self.ledger.store, self.persistence.store, *served_by))
        self.settled_at_start = False  # whether start() found no other host and settled

    def _lease_lost(self, why: str) -> None:
        """The lease is lost: admit nothing more (another host may settle what this one
        admits), and tell whoever serves, which stops rather than keep running apps whose every
        call is refused while the operator sees nothing but a log line."""
        self.ledger.refuse_admissions(why)
        self.lease_lost_why = why
        self.lease_lost.set()

    def _record(self, kind: str, detail: str) -> int:
        """An `operator.<kind>` record by this host (a policy load, a refused publication)."""
        return append_operator(self.ledger.audit, kind, clock=self.clock,
                               detail=detail + self._on_host)

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> Host:
        """Serve; a start that fails at any step stops what it opened, then raises."""
        try:
            self._check_chain()
            audit_policy_load(self.ledger.audit, self.policy.current().revision,
                              self.home.policies_dir, self.clock, self._on_host)
            # Settle unfinished calls and re-count seats only when no other host serves this
            # home: another host's calls in flight are not unfinished (`host.ledger.lease`).
            self.settled_at_start = self.lease.acquire()
            self._start_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_chain(self) -> None:
        """Refuse to serve on an audit chain that does not verify (rule 9: nothing is chained
        onto records that may be forged). `--degraded` instead starts a new, anchored segment
        that records the break, and serves."""
        res = self.ledger.audit.verify(every=START_PROGRESS_EVERY, progress=lambda done, total:
                                       log.warning("verifying the audit chain before serving: "
                                                   "%s of %s records", f"{done:,}", f"{total:,}"))
        if res.ok:
            return
        where = f"record {res.first_bad_seq}: " if res.first_bad_seq is not None else ""
        if not self.config.degraded:
            raise StartRefused(
                f"the audit chain does not verify ({where}{res.problem})",
                "see `stockade audit verify` and restore host.db and audit.anchor from a "
                "backup; or start with --degraded to serve anyway: the host then starts a new, "
                "anchored segment of the chain that records this break")
        seq = self.ledger.audit.start_segment(res, actor=operator_actor())
        log.warning("audit chain broken (%s%s); --degraded: new segment from seq %d",
                    where, res.problem, seq)

    def _settle(self, host_id: str | None = None, untagged: bool = False,
                until: float | None = None) -> int:
        # Seats need no re-count: they are counted from the server's users at each creation.
        return self.ledger.settle(self._was_applied, host_id, untagged=untagged, until=until)

    def _was_applied(self, op_id: str) -> bool | None:
        """None: the server cannot say now (a workspace that answers 503): the call stays
        unsettled, its units reserved, for a later start or sweep. Raised, it stopped the start:
        the home could not be served until the workspace could read the write back."""
        try:
            return self.server.was_applied(op_id)
        except ServerError as exc:
            log.warning("unfinished call %s left unsettled, its units reserved: the server "
                        "cannot say whether it applied (%s)", op_id, exc)
            return None

    def _start_serving(self) -> None:
        self.spawner = Spawner(use_zygote=self.config.use_zygote, prefork=self.config.prefork,
                               prefork_limits=self.config.limits)
        self.pump = EventPump()
        self._unsubscribe = self.server.subscribe(self._on_server_event)
        self.server.set_pre_send_hook(self.pre_send)
        self.sync_installs()
        self.rounds.start(watch=self.config.watch)
        if self.config.tune_gc:
            tune_gc(self)
        # Last: the zygote, started with the spawner, is not a thread of this process; it goes
        # off the host's core, where the children it forks ahead of need then prime.
        self.affinity.place_host()
        if self.spawner.zygote is not None:
            self.affinity.aside(self.spawner.zygote.pid)
            self.spawner.on_new_zygote = self.affinity.aside  # a replacement goes there too

    def pooled_stores(self) -> list[Pooled]:
        """The stores an app's start and calls use, whose connections are pooled."""
        stores: list[Pooled] = [self.installs.store, self.tokens.store, self.identities.store,
                                self.ledger.store, self.persistence.store]
        return [*stores, self.server.db] if isinstance(self.server, EmbeddedServer) else stores

    def publish_status(self) -> None:
        """Flush every runner's drop summary and publish what each is doing now."""
        with self._lock:
            runners = list(self.runners.values())
        for runner in runners:
            runner.flush_drops()
        self.status_board.publish_or_say(self.clock.now(), {
            r.install_id: (r.app_id, r.status()) for r in runners},
            None if self.home.store_url else self.home.host_db)

    def stop(self) -> None:
        self.rounds.stop()  # a round under way ends before anything it uses closes
        self.server.set_pre_send_hook(None)
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.pump is not None:
            self.pump.close()  # events in flight go back to their runners, which stop next
            self.pump = None
        with self._lock:
            runners = [*self.runners.values(), *self.hooks.ending()]
            self.runners.clear()
            self._receivers_cache = {}
        for runner in runners:
            runner.stop("host stopping")
        self.hooks.join(ROUND_JOIN_S)  # endings under way: their hooks end with the runners
        self.httpout.close()
        with contextlib.suppress(Exception):
            self.status_board.clear()
        if self.spawner is not None:
            self.spawner.close()
            self.spawner = None
        with contextlib.suppress(Exception):
            if self.policy_follower is not None:
                self.policy_follower.close()
        with contextlib.suppress(Exception):
            self.ledger.close()
        self.lease.release()  # until here this host may still finish a call
        self.affinity.release_host()
        # Last, every connection its threads opened, the embedded server's too: the first host's
        # objects are frozen, never collected (`gctune`).
        for store in [*self.pooled_stores(), self.status_board.store]:
            with contextlib.suppress(Exception):
                store.close_all()
        untune_gc(self)

    def __enter__(self) -> Host:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reconcile(self) -> int:
        """Settle every call audited before a crash without an outcome: only while no other
        host serves the store (`start` does, under the lease: `host.ledger.storelease`)."""
        return self._settle()

    # ---- installs --------------------------------------------------------------------------

    def sync_installs(self, *, wait_hooks: bool = True) -> None:
        """Make the running set match the install store (start, restart, stop). `wait_hooks`
        False (the watcher): lifecycle hooks are handed over, not waited for, so one app's hook
        queued behind its events holds up no other install change."""
        # Disabled or uninstalled apps, stopped after the lock: their hook may take up to an
        # event's deadline, and every dispatch waits for this lock (`_receivers`).
        ending: list[tuple[AppRunner, str]] = []
        # A continuing app's queued events, handed to its new runner (none is lost to a restart).
        carried: dict[str, tuple[AppRunner, list[Job]]] = {}
        # Their old runners, stopped after the lock too: a stop waits (5 s) for the runner's
        # thread, which a slow bridge call (the app's own slow server) holds.
        restarted: list[tuple[AppRunner, str]] = []
        try:
            # One sync at a time reads the store and matches the running set to it: a sync
            # that read before another's and matched after it undid the newer one (an app
            # enabled and started by one sync was stopped again by the watcher's older view).
            with self._sync_lock:
                # A consent the CLI just signed with a rotated key must verify (not "tampered").
                self.keyring.refresh()
                # The hooks before the records: each hook read here has its change in
                # `records`, so it meets the runner that change made. Read after, a disable
                # committed between the two reads met the runner still running with the older
                # generation and was marked done unrun; the app was ended without its hook.
                hooks = self.installs.pending_hooks()
                records = {r.install_id: r for r in self.installs.list()}
                epoch = self.installs.epoch()  # a bump revokes every token: all start again
                self._match_runners(records, epoch, ending, carried, restarted)
        finally:  # whatever one app's start raised: an app disabled meanwhile stops all the same
            for old, jobs in carried.values():  # the app did not start again
                for job in jobs:
                    old.drop(job, "stopped")
            self.hooks.end(restarted, wait=wait_hooks, final=False)
            self.hooks.end(ending, wait=wait_hooks)  # from the watcher: waits on no app
        self.gate.installs.invalidate()
        self.hooks.run_pending(self.runners, hooks, wait=wait_hooks)

    def _match_runners(self, records: dict[str, InstallRecord], epoch: int,
                       ending: list[tuple[AppRunner, str]],
                       carried: dict[str, tuple[AppRunner, list[Job]]],
                       restarted: list[tuple[AppRunner, str]]) -> None:
        """`sync_installs` under the lock: the runners to end go to `ending` or `restarted`."""
        with self._lock:
            inactive = self.credentials.inactive_users(self.runners)
            for install_id, runner in list(self.runners.items()):
                rec = records.get(install_id)
                if rec is not None and rec.app_user_id in inactive:
                    self.credentials.revoke_for_user(install_id)
                # A runner starting a child has revoked its earlier token itself (minting the
                # new one) and holds the old session until the handshake is done: not stale
                # yet. A revocation that also covers the new token retires it at the next sync.
                retired = runner.state != "starting" and self.credentials.stale(runner.session,
                                                                               epoch)
                forged = rec is not None and not self._consent_holds(rec, runner.install)
                if runner.crash_stop is not None and rec is not None:  # read after it was kept
                    rec = records[install_id] = self.installs.get(install_id) or rec
                cleared = runner.crash_stop is not None and rec is not None and not rec.crash_stop
                # Another host sharing the store stopped the app for crash-looping: this one's
                # runner is replaced by a stopped one (which starts no child) as it would be here.
                # Not a stop this runner is recording itself (it shows it right after).
                stopped = runner.crash_stop is None and runner.crash_stopping is None \
                    and rec is not None and bool(rec.crash_stop)
                if (rec is None or not rec.enabled or rec.generation != runner.install.generation
                        or rec.settings != runner.install.settings or retired or forged or cleared
                        or stopped):
                    self.runners.pop(install_id)
                    self._receivers_cache = {}
                    why = "uninstalled" if rec is None else (
                        "disabled" if not rec.enabled else
                        "changed (new generation)" if rec.generation != runner.install.generation
                        else "settings changed" if rec.settings != runner.install.settings
                        else "its record does not verify against its consent" if forged
                        else "its crash-loop stop was cleared by the operator" if cleared
                        else "stopped for crash-looping by another host" if stopped
                        else "restarted: its token was revoked or expires, or its key retired")
                    if rec is None or not rec.enabled:
                        runner.end_events(why)  # its hook is next: no backlog, no late event
                        ending.append((runner, why))
                        self.hooks.begin_end(runner)
                    else:
                        carried[install_id] = (runner, runner.take_queued())
                        self.httpout.close_install(install_id)  # its requests end here
                        restarted.append((runner, why))
                        self.hooks.begin_end(runner)
            for install_id, rec in records.items():
                if rec.enabled and install_id not in self.runners:
                    if not self._consent_holds(rec):
                        continue
                    if rec.app_user_id is None or foreign_app_user(self.server, rec.app_id,
                                                                   rec.app_user_id):
                        try:
                            user = self.server.create_app_user(rec.app_id, rec.manifest.name)
                        except ServerError as exc:  # this app waits; the others start
                            self._app_user_unavailable(rec, exc)
                            continue
                        self.installs.set_app_user_id(install_id, user["id"])
                        rec = self.installs.get(install_id) or rec
                    ensure_app_user_agent(self.server, rec, self.ledger,
                                          self.policy.current(), self.clock.now())
                    if rec.rest_as:
                        # The operator named another identity for this app's REST routes at
                        # consent: the chain says so whenever an app starts with it in force.
                        self.ledger.append(AuditRecord(
                            kind="consent", app_id=rec.app_id, install_id=install_id,
                            event="rest_identity", actor=rec.rest_as[:128],
                            detail=f"REST routes without a bridge action act as server user "
                                   f"{rec.rest_as[:64]!r} (consent {rec.consent_id})"))
                    self.runners[install_id] = AppRunner(self, rec)
                    self._receivers_cache = {}
                    hand_over(self.event_policy.carry(self.policy.current(), rec,
                                                      carried.pop(install_id, None)),
                              self.runners[install_id])

    def _stop_runner(self, runner: AppRunner, why: str) -> None:
        runner.stop(f"app {why}")
        if runner.install_id not in self.runners:  # a new runner's clients are its own
            self.httpout.close_install(runner.install_id)
        if why == "uninstalled":  # `uninstall_app` deleted its log; the stop may have noted
            applog.remove_log(self.home.logs_dir / f"{runner.install_id}.log")
        self.audit_supervisor(runner, "stopped", why)

    def _consent_holds(self, rec: InstallRecord, verified: InstallRecord | None = None) -> bool:
        """Whether `rec` verifies against its signed consent (at once if what the consent signs
        is as in `verified`, a record verified before). Tampering disables the app; a failure is
        recorded once per consent and verdict (`_watch` retries)."""
        if verified is not None and signed_view(rec) == signed_view(verified):
            return True
        check = verify_install(rec, self.installs, self.keyring, disable=True)
        if not check.ok and self._waiting.get(rec.install_id) != (rec.consent_id,
                                                                  check.unverifiable):
            self.ledger.append(AuditRecord(
                kind="consent", app_id=rec.app_id, install_id=rec.install_id,
                code="consent_unverified" if check.unverifiable else "consent_invalid",
                detail=(check.problem or "")[:500]))
        if not check.ok:
            self._waiting[rec.install_id] = (rec.consent_id, check.unverifiable)
        return check.ok

    def _app_user_unavailable(self, rec: InstallRecord, exc: ServerError) -> None:
        """`rec`'s app cannot get its own server user (its username held by another user, a
        workspace out of reach): it is not started, every other app is, and the next sync tries
        again. Said in the log and the chain once per install and problem."""
        why = str(exc)[:500]
        if self._user_waits.get(rec.install_id) == why:
            return
        self._user_waits[rec.install_id] = why
        log.error("app %s not started: it has no server user of its own yet: %s", rec.app_id, why)
        self.ledger.append(AuditRecord(kind="supervisor", app_id=rec.app_id,
                                       install_id=rec.install_id, event="app_user_unavailable",
                                       detail=why))

    def start_child(self, runner: AppRunner) -> Child:
        """Spawn, handshake (token + layers) and load one app's child."""
        assert self.spawner is not None, "Host.start() first"
        # The gate's view: the record and epoch its next call will check, re-read only when
        # the store changed (`InstallView`), so a start parses no manifest it has seen.
        rec, epoch, _version = self.gate.installs.get(runner.install_id)
        if rec is None or not rec.enabled:
            raise ChildDied("app is not enabled", "stopped")
        if not self._consent_holds(rec, runner.install):  # edited since its runner started
            raise ChildDied("its install record does not verify against its consent", "stopped")
        modules = self._app_modules(rec)
        self.credentials.may_mint(rec.app_id, rec.install_id, rec.app_user_id)
        child = self.spawner.start(self.config.limits)
        self.affinity.starting(child.pid)
        token, minted = tokens.mint(
            self.keyring, self.clock, app_id=rec.app_id, install_id=rec.install_id,
            session_id=child.session_id, generation=rec.generation, epoch=epoch,
            permissions=rec.grants, policy_hash=self.policy.current().revision,
        )

        def verify(presented: str) -> None:
            # Exactly the token this child was given: stricter than a signature check (no other
            # token passes, however well signed) and ~0.2 ms less of a start.
            if not tokens.same_token(presented, token):
                raise tokens.TokenError("the child presented a token it was not given")

        started = False
        try:
            self.credentials.record(minted)
            child.handshake(token, verify, degraded=self.config.degraded,
                            uid=self.identities.of(rec.install_id) if os.geteuid() == 0 else None)
            if child.missing_layers:  # only under --degraded; the chain says which walls
                self.audit_supervisor(runner, "confinement_degraded",
                                      "started with confinement layer(s) missing (--degraded): "
                                      + ", ".join(child.missing_layers))
            module, cls = rec.manifest.entry_parts()
            patient_load(self.affinity, child)  # module code runs: not on the host's core
            child.load(rec.app_id, modules, module, cls, dict(rec.settings), runner.log,
                       rec.app_user_id)
            started = True
        except Exception:
            child.kill("start failed", code="start_failed")
            child.close()
            runner.child_gone(child)  # a load whose log was cut is counted still
            raise
        finally:
            loaded(child)
            if not started:  # a start that failed is over: the pool may fork now
                self.spawner.started()
        for store in (self.installs.store, self.tokens.store, self.identities.store):
            store.release()  # the start's alone: a runner thread keeps only its call path's
        runner.session = make_session(rec, child, minted)
        runner.install = rec
        self._receivers_cache = {}  # after the assignment (see __init__); no lock on this thread
        runner.handlers = frozenset(child.handlers)
        # Started: every core again. A spawned child's app process was forked by its stand-in
        # after the spawn, from this thread's core.
        self.affinity.spread(child.pid)
        if child.popen is not None:
            self.affinity.spread(child.app_pid())
        return child

    def first_job_over(self) -> None:
        """A runner's new child finished (or failed) the job it was started for: the pre-fork
        pool may fork the replacement of the child it handed out (`Prefork.started`). Not at
        the end of `start_child`: forking it there (a cgroup made, the zygote asked) took the
        host's core from the app's first event, ~0.5 ms of it here (docs/BENCH.md)."""
        if self.spawner is not None:
            self.spawner.started()

    def _app_modules(self, rec: InstallRecord) -> dict[str, str]:
        """The consented package's code; a stored package swapped behind the host's back
        disables the app as tampered (`host.supervise.appcode`)."""
        try:
            return self.app_code.modules(rec)
        except PackageTampered as exc:
            self.installs.set_enabled(rec.install_id, False, reason=f"tampering detected: {exc}")
            self.ledger.append(AuditRecord(
                kind="consent", app_id=rec.app_id, install_id=rec.install_id,
                code="consent_invalid", detail=str(exc)[:500]))
            raise ChildDied(str(exc), "stopped") from None
