"""`stockade doctor`: what this machine provides, and whether the host's state is healthy.

The confinement layers are not guessed from kernel version strings: the doctor starts a real
child through the zygote (and one through the spawn fallback) and reads the layer report the
child made after confining itself — the same report the host checks before running any app —
and then reads the live child's namespaces, uids and filter mode from /proc, as the kernel
sees them (a child's report could be wrong; /proc is not the child's to write).
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from dataclasses import dataclass, field
from typing import Any

from host.clock import SystemClock
from host.home import Home, foreign_hold, toml_files
from host.keys import tokens
from host.keys.keyring import Keyring
from host.ledger.lease import others_serving
from host.supervise.child import REQUIRED_LAYERS, ChildLimits
from host.supervise.identities import APP_UID_BASE, APP_UID_COUNT
from host.supervise.memcg import member_of
from host.supervise.spawner import Spawner
from sandbox import landlock


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.__dict__ for c in self.checks]}


def probe_child_layers(use_zygote: bool) -> dict[str, Any]:
    """Start one confined child and return its own layer report (or the error)."""
    ring = Keyring.ephemeral()
    clock = SystemClock()
    spawner = Spawner(use_zygote=use_zygote)
    try:
        child = spawner.start(ChildLimits())
        token = tokens.issue(ring, clock, app_id="doctor", install_id="none",
                             session_id=child.session_id, generation=0, epoch=0,
                             permissions=frozenset(), policy_hash="none")
        try:
            def verify(presented: str) -> None:
                tokens.handed_back(presented, token)

            # A root host gives each app its own uid; the probe takes the range's last number,
            # in the one block no home holds (`identities.BLOCKS`).
            uid = APP_UID_BASE + APP_UID_COUNT - 1 if os.geteuid() == 0 else None
            layers = child.handshake(token, verify, degraded=True, uid=uid)
            dump = layers.model_dump()
            kernel = kernel_view(child.app_pid(), uid, dump)
            cgroups = spawner.memory_cgroups
            if cgroups is not None and child.memory_cgroup is not None:
                kernel["memory cgroup"] = (
                    cgroups.holds(child.app_pid(), child.memory_cgroup),
                    f"{member_of(child.app_pid(), cgroups.plan.kind)} (cgroup {cgroups.plan.kind})")
            return {**dump, "kernel": kernel, "memory_cgroup_possible": cgroups is not None,
                    "memory_cgroup_reason": spawner.memory_cgroup_reason}
        finally:
            child.shutdown(0.5)
    except Exception as exc:  # noqa: BLE001 - the doctor reports, never crashes
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        spawner.close()


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def kernel_view(pid: int, uid: int | None,
                reported: dict[str, Any] | None = None) -> dict[str, tuple[bool, str]]:
    """Each layer as the kernel shows it in /proc for a live confined child, not as the child
    reports it: name -> (present, what was read). `uid`: the one it was given (root host).

    A host that is not root may not read a child's namespace links (the child is not dumpable
    and the kernel wants a capability in the namespace its memory was made in, which only root
    has); there the namespaces are the child's own report, and the detail says so."""
    out: dict[str, tuple[bool, str]] = {}
    try:
        st = _status(pid)
    except OSError as exc:
        return {"readable": (False, f"/proc/{pid}: {exc}")}
    for ns in ("pid", "ipc", "net"):
        mine = os.readlink(f"/proc/self/ns/{ns}")
        try:
            its = os.readlink(f"/proc/{pid}/ns/{ns}")
        except PermissionError:
            said = bool((reported or {}).get(f"{ns}ns"))
            out[f"{ns} namespace"] = (said and os.geteuid() != 0, "not readable by a non-root "
                                      f"host; the child reports {'it' if said else 'none'}")
            continue
        except OSError as exc:
            out[f"{ns} namespace"] = (False, str(exc))
            continue
        out[f"{ns} namespace"] = (mine != its, f"{its} (this process: {mine})")
    uids = st.get("Uid", "").split()
    if uid is None:
        # A non-root host has no uid to give: the child shares the host's, and its PID
        # namespace (above) is what keeps the host and other apps out of its reach.
        out["own uid"] = (True, f"uids {' '.join(uids)}: the host's (not root; none to give)")
    else:
        own = uids == [str(uid)] * 4 and st.get("Gid", "").split() == [str(uid)] * 4
        out["own uid"] = (own and str(os.geteuid()) not in uids,
                          f"uids {' '.join(uids)} (want {uid}, host {os.geteuid()})")
    # 2 = filter mode: the allow-list program (sandbox/seccomp.py) is the only filter installed
    out["seccomp filter"] = (st.get("Seccomp") == "2" and st.get("Seccomp_filters") == "1",
                             f"Seccomp {st.get('Seccomp')}, filters {st.get('Seccomp_filters')}")
    out["no_new_privs"] = (st.get("NoNewPrivs") == "1", f"NoNewPrivs {st.get('NoNewPrivs')}")
    out["empty root"] = _root_view(pid, reported)
    return out


def _root_view(pid: int, reported: dict[str, Any] | None) -> tuple[bool, str]:
    """The child's root as the kernel names it: a removed directory of its own
    (`sandbox.confine.enter_empty_root`), never the host's "/". Hidden from a non-root host as
    the namespace links are (`kernel_view`), where the child's report stands in."""
    try:
        root = os.readlink(f"/proc/{pid}/root")
    except PermissionError:
        said = bool((reported or {}).get("empty_root"))
        return (said and os.geteuid() != 0,
                f"not readable by a non-root host; the child reports {'it' if said else 'none'}")
    except OSError as exc:
        return (False, str(exc))
    return (root != "/" and root.endswith(" (deleted)"), root)


def run(home: Home, *, spawn_too: bool = True) -> Report:
    rep = Report()
    zyg = probe_child_layers(True)
    if "error" in zyg:
        rep.checks.append(Check("zygote child", False, zyg["error"]))
    else:
        for layer in (*REQUIRED_LAYERS, "uid_dropped"):
            # As root, a child must run as its app's own uid (the kernel's checks then keep
            # apps apart); a non-root host has none to give (seccomp and Landlock do it).
            required = layer in REQUIRED_LAYERS or os.geteuid() == 0
            rep.checks.append(Check(f"layer: {layer}", bool(zyg.get(layer)),
                                    "applied in a real child" if zyg.get(layer) else "MISSING",
                                    required))
        # Required only where this host can make cgroups (root, a writable memory hierarchy);
        # elsewhere apps run without it, and the reason is shown (page tables then unbounded).
        possible = bool(zyg.get("memory_cgroup_possible"))
        rep.checks.append(Check(
            "layer: memory_cgroup", bool(zyg.get("memory_cgroup")),
            "applied in a real child" if zyg.get("memory_cgroup") else
            f"MISSING: {zyg.get('memory_cgroup_reason') or 'not joined'}"
            + ("" if possible else " (not required: kernel memory such as page tables is "
               "then bounded by nothing per app)"), possible))
        for name, (ok, detail) in (zyg.get("kernel") or {}).items():
            rep.checks.append(Check(f"kernel: {name}", ok, detail))
        for note in zyg.get("notes") or []:
            rep.checks.append(Check("layer note", True, str(note), False))
    rep.checks.append(Check("landlock ABI", landlock.abi_version() >= 1,
                            f"version {landlock.abi_version()}", False))
    if spawn_too:
        sp = probe_child_layers(False)
        missing = [k for k in REQUIRED_LAYERS if not sp.get(k)]
        rep.checks.append(Check("spawn fallback", "error" not in sp and not missing,
                                sp.get("error") or (f"missing: {missing}" if missing else "ok"),
                                False))
    rep.checks.extend(state_checks(home))
    rep.checks.extend(workspace_checks(home))
    return rep


def workspace_checks(home: Home) -> list[Check]:
    """For a home connected to a Rocket.Chat workspace: reachable, its version, and the service
    account's permissions against exactly what Stockade needs (extra power is a warning; the
    least-privilege list is `stockade rocketchat check`)."""
    from host.server.remote.config import ConfigError, connected, open_remote
    from host.server.remote.permcheck import check_account

    if not connected(home):
        return []
    try:
        remote = open_remote(home, SystemClock())
    except ConfigError as exc:
        return [Check("rocketchat workspace", False, str(exc))]
    try:
        rep = check_account(remote)
    finally:
        remote.close()
    shown = rep.shown()  # the workspace's own words, inert (DESIGN rule 12)
    out = [Check("rocketchat workspace", rep.reachable and rep.problem is None,
                 f"{shown['url']}: version {shown['version']}"
                 if rep.reachable and not rep.problem
                 else f"{shown['url']}: {shown['problem'] if rep.problem else 'not reachable'}")]
    if rep.reachable and rep.problem is None:
        out.append(Check("rocketchat permissions", not rep.missing,
                         f"missing: {', '.join(rep.missing)}" if rep.missing else
                         f"the service account {shown['account']} holds every needed "
                         "permission"))
        out += [Check("rocketchat warning", True, w, False) for w in rep.warnings()]
    return out


# Below this much free space on a store's file system, doctor fails. Guards: the next write's
# WAL append and checkpoint need a few pages; under this a create may already be refused.
MIN_FREE_BYTES = 4 << 20


def state_checks(home: Home) -> list[Check]:
    """Key, store, audit and serving-host health of a home (no child is started)."""
    out: list[Check] = []
    if not home.root.exists():
        out.append(Check("home", True, f"{home.root} does not exist yet (fresh)", False))
        return out
    mode = stat.S_IMODE(os.stat(home.root).st_mode)
    # The owner too: 0700 guards nothing against a folder's owner (`host.home.foreign_hold`).
    foreign = foreign_hold(home.root, (home.root, home.keys_dir, home.trust_dir,
                                       home.packages_dir, home.policies_dir, home.logs_dir))
    out.append(Check("home permissions", mode & 0o077 == 0 and foreign is None,
                     f"{home.root} mode {mode:o}" + (f"; {foreign}" if foreign else "")))
    if (home.keys_dir / "keyring.json").exists():
        try:
            ring = Keyring.open(home.keys_dir)
            loose = [p.name for p in home.keys_dir.glob("*.key")
                     if stat.S_IMODE(os.stat(p).st_mode) & 0o077]
            out.append(Check("signing keys", not loose,
                             f"current key {ring.current}; {len(ring.public_keys())} key(s)"
                             + (f"; readable by others: {loose}" if loose else "")))
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            out.append(Check("signing keys", False, str(exc)))
    for label, path in home.sqlite_files():
        if path.exists():
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                    result = conn.execute("PRAGMA quick_check").fetchone()[0]
                    jm = conn.execute("PRAGMA journal_mode").fetchone()[0]
                out.append(Check(label, result == "ok", f"{path.name}: {result}, {jm}"))
            except sqlite3.Error as exc:
                out.append(Check(label, False, f"{path.name}: {exc}"))
    if home.store_url is None and home.host_db.exists():
        out.append(sqlite_schema_check(home))
    if home.server_apart:
        out.append(_stray_check(home) or Check(
            "server data", False, "in a server.db of its own: its writes take three commits, "
            "not one transaction; `stockade store migrate` (with no host serving) moves it "
            "into host.db", required=False))
    out.append(policy_check(home))
    out += disk_checks(home)
    if home.store_url is not None:
        shared, serving = shared_store_checks(home.store_url)
        out += shared
    else:
        serving = others_serving(home.lease_path)
        out.append(Check("host serving", True, "a host is serving this home" if serving
                         else "no host is serving this home", False))
    out += drop_checks(home)
    if home.has_host_store():
        try:
            from host.ledger.audit import open_readonly

            log = open_readonly(home.host_store, SystemClock())
            res = log.verify()
            out.append(Check("audit chain", res.ok,
                             f"{res.records} records verified" if res.ok else
                             f"record {res.first_bad_seq}: {res.problem}"))
            pending = len(log.pending_intents())
            if pending:
                out.append(Check(
                    "unfinished calls", True,
                    f"{pending} allowed call(s) without an outcome record: "
                    + ("in flight on the serving host" if serving else
                       "the next host to start settles them"), False))
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            out.append(Check("audit chain", False, str(exc)))
    return out


def sqlite_schema_check(home: Home) -> Check:
    """A home's SQLite stores at a schema this release reads: one a newer release wrote is
    refused by every command and by `serve` (`host.store.SchemaTooNew`), so it fails here too
    (it read "ok"). An older one is upgraded as it opens: no failure."""
    from host.migrate import store_status
    from host.server.migrations import SCHEMA_VERSION as SERVER_SCHEMA_VERSION
    from host.store import StoreError

    try:
        newer = [f"{s.name} {s.have} (this release: {s.need})" for s in store_status(
            home.host_db) if s.have is not None and s.have > s.need]
        if home.server_db.exists():
            with contextlib.closing(sqlite3.connect(f"file:{home.server_db}?mode=ro",
                                                    uri=True)) as conn:
                has = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                   "name = 'schema_version'").fetchone()
                row = conn.execute("SELECT version FROM schema_version WHERE id = 1"
                                   ).fetchone() if has else None
            if row is not None and isinstance(row[0], int) and row[0] > SERVER_SCHEMA_VERSION:
                newer.append(f"server {row[0]} (this release: {SERVER_SCHEMA_VERSION})")
    except (StoreError, sqlite3.Error) as exc:  # STORE_FAILURES' SQLite share
        return Check("store schema", False, f"cannot be read: {exc}")
    if newer:
        from host.store.base import SCHEMA_TOO_NEW_HINT

        return Check("store schema", False, f"newer than this release: {', '.join(newer)}; "
                     f"{SCHEMA_TOO_NEW_HINT}")
    return Check("store schema", True, "readable by this release", False)


def _stray_check(home: Home) -> Check | None:
    """A failed check when the home's server.db is a stray beside host.db's server data (every
    command that opens the server refuses it, `host.server.stray`); None when it is the home's."""
    from host.server.stray import stray

    try:
        refusal = stray(home.server_db)
    except sqlite3.Error as exc:
        return Check("stray server.db", False, f"host.db cannot be read to tell: {exc}")
    if refusal is None:
        return None
    return Check("stray server.db", False, f"{refusal.message}; {refusal.hint}")


# How far a serving host's clock may be from the database's before `doctor` warns (s). Quota
# windows, leases and the sign-in budget are timed by the database's clock on a shared store, so
# a skewed host admits nothing more; what it still stamps by its own clock are the times of the
# audit records it holds for a group commit and of its own log, which then read out of order
# beside other hosts' (an investigation lines them up by time). NTP keeps machines within
# milliseconds; a beat's own round trip is well under this.
MAX_CLOCK_LEAD_S = 1.0


def shared_store_checks(url: str) -> tuple[list[Check], bool]:
    """A PostgreSQL store: reachable, its schema current, the hosts serving it and their
    leases (docs/SCALE.md). Returns the checks and whether any host serves it."""
    from host.ledger.storelease import live_hosts
    from host.migrate import store_status
    from host.store import STORE_FAILURES, describe

    where = describe(url)
    try:
        states = store_status(url)
        # A lease table of an older schema lacks the columns read here: migrate first.
        hosts = live_hosts(url) if all(s.current for s in states if s.name == "leases") else []
    except STORE_FAILURES as exc:
        return [Check("host store", False, f"{where}: {exc}")], False
    stale = [f"{s.name} {s.have or '-'} (needs {s.need})" for s in states if not s.current]
    out = [Check("host store", not stale, f"{where}: PostgreSQL, schema "
                 + (f"not current: {', '.join(stale)}; `stockade store migrate`" if stale
                    else "current"))]
    now = SystemClock().now()
    listed = "; ".join(f"{h.host_id} on {h.machine} pid {h.pid}, beat {now - h.beat:.0f} s ago"
                       + (" (past its grace: not serving; its calls are settled by the next"
                          " host's sweep)" if h.past_grace else "")
                       for h in hosts)
    out.append(Check("hosts serving", True, f"{len(hosts)} host(s) hold a lease"
                     + (f": {listed}" if listed else ""), False))
    skewed = [f"{h.host_id} on {h.machine}: {h.clock_lead:+.1f} s" for h in hosts
              if h.clock_lead is not None and not h.past_grace
              and abs(h.clock_lead) > MAX_CLOCK_LEAD_S]
    if skewed:
        out.append(Check("host clocks", False, "clocks off the database's by more than "
                         f"{MAX_CLOCK_LEAD_S:g} s at their last beat ({'; '.join(skewed)}): "
                         "quotas are timed by the database's clock and hold, but the audit "
                         "records these hosts stamp read out of order beside other hosts'; "
                         "synchronise the machines' clocks (NTP)", False))
    return out, bool(hosts)


def drop_checks(home: Home) -> list[Check]:
    """Events the serving host dropped, per app (its published status; a stopped host's rows
    say nothing about now). Not a failure: the drops are the overflow policy working, but an
    operator must see them (issue 26). The audit log has each summary."""
    from host.supervise.status import is_fresh, read_status

    try:
        live = read_status(home.host_store)
    except sqlite3.Error as exc:
        return [Check("event drops", False, f"the serving host's status is unreadable: {exc}",
                      False)]
    now = SystemClock().now()  # the clock the host stamps its rows with
    out: list[Check] = []
    for row in sorted((r for r in live.values() if is_fresh(r, now)),
                      key=lambda r: str(r.get("app_id", ""))):
        dropped = int(row.get("dropped", 0))
        reasons = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in
                            sorted(dict(row.get("dropped_by_reason") or {}).items()))
        out.append(Check(f"event drops: {row.get('app_id', '?')}", True,
                         f"{dropped} dropped" + (f" ({reasons})" if reasons else "")
                         + f", {row.get('queued', 0)} queued, {row.get('state', '?')}", False))
    return out


def policy_check(home: Home) -> Check:
    """Whether the home's policy folder loads. Without a policy the gate denies every call, so
    every app the operator installed fails at its first bridge call: a required check."""
    from policies.loader import PolicyLoadError, load_policy

    files = sorted(p.name for p in toml_files(home.policies_dir)
                   if not p.name.endswith(".cases.toml")) if home.policies_dir.is_dir() else []
    if not files:
        return Check("policy", False, f"no policy files in {home.policies_dir}; "
                     "`stockade init` writes the shipped default")
    try:
        policy = load_policy(home.policies_dir)
    except PolicyLoadError as exc:
        return Check("policy", False, f"{exc}; `stockade policy check {home.policies_dir}`")
    except (OSError, ValueError) as exc:
        return Check("policy", False, f"{home.policies_dir}: {exc}")
    short = policy.revision.removeprefix("sha256:")[:12]
    return Check("policy", True, f"{', '.join(files)} (revision {short})")


def disk_checks(home: Home) -> list[Check]:
    """Free space on every file system holding a store (they may differ: a store may be a link).

    A full disk refuses every write with effects (the gate settles the call and refunds it), so
    the operator must hear of it here, not from apps' errors."""
    out: list[Check] = []
    seen: set[int] = set()
    for label, path in home.sqlite_files():
        where = path.resolve().parent if path.exists() else home.root
        try:
            st = os.statvfs(where)
        except OSError as exc:
            out.append(Check(f"disk ({label})", False, f"{where}: {exc}"))
            continue
        if st.f_fsid in seen:
            continue
        seen.add(st.f_fsid)
        if st.f_flag & os.ST_RDONLY:  # it read "ok, N MiB free" while every write failed
            out.append(Check(f"disk ({label})", False, f"{where}: the file system is read-only; "
                             "every write is refused until it is remounted read-write"))
            continue
        free = st.f_bavail * st.f_frsize
        ok = free >= MIN_FREE_BYTES
        out.append(Check(f"disk ({label})", ok,
                         f"{where}: {free // (1 << 20)} MiB free" if ok else
                         f"{where}: disk full ({free // 1024} KiB free); writes are refused "
                         "until space is freed"))
    return out
