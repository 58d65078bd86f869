"""The install store: which apps are installed, at which version, with which grants.

Lives in HOME/host.db next to other tables; every table here is prefixed `install_` or
`consent_`. One install per app id. The CLI writes it; the running host reads it and notices
changes from another process through `data_version()`.

Security-relevant columns:
- `generation` is bumped on disable, uninstall, update and any change of grants: the gate
  refuses a token whose generation is not the install's current one, so every token dies.
- `grants` is bound by a host-signed consent record (`consent_records`, see host/apps/consent.py);
  an edit to either outside the CLI fails `verify_install` and disables the app.
- `settings` holds secret values too (the app needs them); `InstallRecord` never prints them:
  `redacted_settings()` / `to_public_dict()` are what list, info and logs show.

Lifecycle hooks the app should see (install, enable, disable, update, uninstall,
settings_changed) are written to `install_hooks` in the same transaction as the change, so the
supervisor (another process) runs each: `pending_hooks()` / `mark_hook_done()`. At least once: a
hook the app ran whose row the host could not delete (a store error, a host that died there) is
handed over again by the next sync (docs/EVENTS.md).
In-process listeners (`LifecycleListener`) are also told after commit.

Two operators (CLI runs, the console) change one install at once: a change computed from a
record read earlier is written only if what it was computed from still stands (`expect`,
else `InstallChanged`); settings merge only the keys changed, in one transaction.
"""
from __future__ import annotations

import builtins
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from host.apps.installschema import DDL, SCHEMA_COMPONENT, SCHEMA_VERSION
from host.apps.lineage import keep_binding_in
from host.apps.manifest import Manifest, SettingValue
from host.keys.keyring import retired_in
from host.store import (
    INTEGRITY_ERRORS,
    Store,
    StoreTarget,
    ensure_schema,
    open_store,
)

HookName = Literal["install", "enable", "disable", "update", "uninstall", "settings_changed"]
SECRET_MASK = "********"  # noqa: S105 (a mask, not a password)


def secret_values(rec: InstallRecord) -> list[str]:
    """The values of `rec`'s secret settings as text, longest first (one holding another is
    then masked whole by `mask_secrets`); unset and empty ones left out."""
    return sorted({str(v) for k, v in rec.settings.items()
                   if k in rec.secret_keys and v not in (None, "")}, key=len, reverse=True)


def mask_secrets(text: str, values: list[str]) -> str:
    """`text` with each of `values` (`secret_values`) replaced by SECRET_MASK."""
    for value in values:
        text = text.replace(value, SECRET_MASK)
    return text


class InstallError(Exception):
    """An install operation cannot proceed; the message says why and what to do."""


class InstallChanged(InstallError):
    """The install changed (another operator's consent, settings or update, or an uninstall)
    after the caller read it: nothing was written; read it again and redo the change."""


class InstallGone(InstallChanged):
    """The install was uninstalled (by another operator) after the caller read it: an
    uninstall of it finds nothing to delete, and says so instead of a second success."""


@dataclass(frozen=True)
class ConsentRow:
    """A stored, host-signed consent record (canonical JSON payload; see host/apps/consent.py)."""

    consent_id: str
    install_id: str
    payload: bytes
    kid: str
    signature: bytes
    created_at: float


@dataclass(frozen=True)
class PendingUpdate:
    """A new version waiting for the operator's consent (the old one keeps running)."""

    version: str
    package_hash: str
    manifest_hash: str
    manifest: Manifest
    package_path: Path
    publisher: Mapping[str, Any]
    diff: Mapping[str, Any]
    created_at: float


@dataclass(frozen=True)
class InstallRecord:
    """One installed app. `settings` includes secret values: print only `redacted_settings()`."""

    install_id: str
    app_id: str
    version: str
    package_hash: str
    manifest_hash: str
    manifest: Manifest = field(repr=False)
    package_path: Path
    generation: int
    enabled: bool
    disabled_reason: str | None
    grants: frozenset[str]
    settings: Mapping[str, SettingValue] = field(repr=False)
    secret_keys: frozenset[str]
    app_user_id: str | None
    publisher: Mapping[str, Any]
    consent_id: str
    installed_at: float
    updated_at: float
    pending: PendingUpdate | None = None
    # The server user the operator named (at consent) for this app's REST calls that have no
    # bridge action; None means the app's own user. Read from the signed consent payload only.
    rest_as: str | None = None
    # Why the host stopped this app for crash-looping (`host.supervise.restarts`), None if it
    # did not: no child starts until `app enable` (or an update) clears it.
    crash_stop: str | None = None

    @property
    def asked(self) -> frozenset[str]:
        return self.manifest.asked

    def missing_settings(self) -> list[str]:
        """Required settings without a value: the app cannot work until the operator sets them."""
        return [s.key for s in self.manifest.setting
                if s.required and self.settings.get(s.key) in (None, "")]

    def redacted_settings(self) -> dict[str, SettingValue | None]:
        """Settings as list/info show them: every secret masked (or None when unset)."""
        out: dict[str, SettingValue | None] = {}
        for s in self.manifest.setting:
            value = self.settings.get(s.key)
            if s.secret or s.key in self.secret_keys:
                out[s.key] = SECRET_MASK if value not in (None, "") else None
            else:
                out[s.key] = value
        return out

    def to_public_dict(self) -> dict[str, Any]:
        """The `--json` form: no secret values, ever."""
        p = self.pending
        pending = None if p is None else {"version": p.version, "package_hash": p.package_hash,
                                          "diff": dict(p.diff), "created_at": p.created_at}
        return {
            "install_id": self.install_id, "app_id": self.app_id, "name": self.manifest.name,
            "version": self.version, "package_hash": self.package_hash,
            "manifest_hash": self.manifest_hash, "generation": self.generation,
            "enabled": self.enabled, "disabled_reason": self.disabled_reason,
            "grants": sorted(self.grants), "asked": sorted(self.asked),
            "denied": sorted(self.asked - self.grants),
            "events": list(self.manifest.events),
            "settings": self.redacted_settings(),
            "secret_settings": sorted(self.secret_keys),
            "app_user_id": self.app_user_id, "publisher": dict(self.publisher),
            "installed_at": self.installed_at, "updated_at": self.updated_at,
            "pending_update": pending, "rest_as": self.rest_as, "crash_stop": self.crash_stop,
        }


@dataclass(frozen=True)
class LifecycleEvent:
    """A recorded lifecycle hook for the supervisor to run in the app's child."""

    seq: int
    install_id: str
    app_id: str
    generation: int
    hook: str
    detail: Mapping[str, Any]
    created_at: float


class LifecycleListener(Protocol):
    """In-process observer of lifecycle changes (the supervisor, when it shares the process)."""

    def __call__(self, event: LifecycleEvent) -> None: ...


def new_install_id() -> str:
    """128 random bits: install ids appear in tokens and must not be guessable or reused."""
    return "in_" + secrets.token_hex(16)


def data_version_in(conn: Any) -> int:
    """`InstallStore.data_version` read through any connection to the same `host.db`."""
    row = conn.execute("SELECT changes FROM install_meta WHERE id = 1").fetchone()
    return int(row[0])


def installed_in(conn: Any, install_id: str) -> bool:
    """Whether `install_id` is installed, as `conn` sees it (inside a write: as it will
    commit; `PersistenceStore(installed=...)`)."""
    return conn.execute("SELECT 1 FROM install_installs WHERE install_id = ?",
                        (install_id,)).fetchone() is not None


class InstallStore:
    """Installs, pending updates, consent rows, hooks and the global epoch over host.db."""

    def __init__(self, target: StoreTarget, *, now: Any = None) -> None:
        # Connections are per thread (the running host reads installs from every app's thread,
        # and a shared connection would mix one thread's transaction into another's reads);
        # rows are read by column name.
        self.store: Store = open_store(target, named_rows=True)
        self._now = now or time.time  # wall time for display only, never a decision input
        self.listeners: list[LifecycleListener] = []
        ensure_schema(self.store, SCHEMA_COMPONENT, SCHEMA_VERSION, DDL)

    @property
    def _conn(self) -> Any:
        return self.store.conn()

    def close(self) -> None:
        self.store.close_all()

    def __enter__(self) -> InstallStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, *, count: bool = True) -> Iterator[Any]:
        """One write transaction (the store's write lock) that also bumps the change counter."""
        # The store rolls back only a transaction still open: a Ctrl-C landing just after the
        # COMMIT must surface as itself, not as "cannot rollback - no transaction is active".
        with self.store.transaction() as c:
            yield c
            if count:
                c.execute("UPDATE install_meta SET changes = changes + 1 WHERE id = 1")

    # ---- reads ----------------------------------------------------------------------------------

    def get(self, install_id: str) -> InstallRecord | None:
        row = self._conn.execute(
            "SELECT * FROM install_installs WHERE install_id = ?", (install_id,)).fetchone()
        return None if row is None else self._record(row)

    def by_app(self, app_id: str) -> InstallRecord | None:
        row = self._conn.execute(
            "SELECT * FROM install_installs WHERE app_id = ?", (app_id,)).fetchone()
        return None if row is None else self._record(row)

    def list(self) -> list[InstallRecord]:
        rows = self._conn.execute("SELECT * FROM install_installs ORDER BY app_id").fetchall()
        return [self._record(r) for r in rows]

    def _record(self, row: Any) -> InstallRecord:
        prow = self._conn.execute(
            "SELECT * FROM install_pending WHERE install_id = ?", (row["install_id"],)).fetchone()
        pending = None
        if prow is not None:
            pending = PendingUpdate(
                version=prow["version"], package_hash=prow["package_hash"],
                manifest_hash=prow["manifest_hash"],
                manifest=Manifest.model_validate(json.loads(prow["manifest_json"]), strict=False),
                package_path=Path(prow["package_path"]),
                publisher=json.loads(prow["publisher"]), diff=json.loads(prow["diff"]),
                created_at=prow["created_at"],
            )
        return InstallRecord(
            install_id=row["install_id"], app_id=row["app_id"], version=row["version"],
            package_hash=row["package_hash"], manifest_hash=row["manifest_hash"],
            manifest=Manifest.model_validate(json.loads(row["manifest_json"]), strict=False),
            package_path=Path(row["package_path"]), generation=int(row["generation"]),
            enabled=bool(row["enabled"]), disabled_reason=row["disabled_reason"],
            grants=frozenset(json.loads(row["grants"])), settings=json.loads(row["settings"]),
            secret_keys=frozenset(json.loads(row["secret_keys"])),
            app_user_id=row["app_user_id"], publisher=json.loads(row["publisher"]),
            consent_id=row["consent_id"], installed_at=row["installed_at"],
            updated_at=row["updated_at"], pending=pending,
            rest_as=self._rest_as(row["consent_id"]), crash_stop=row["crash_stop"],
        )

    def _rest_as(self, consent_id: str) -> str | None:
        """The REST identity named in the install's consent payload (signed; see consent.py)."""
        row = self.consent(consent_id)
        try:
            value = None if row is None else json.loads(row.payload).get("rest_as")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None

    def consent(self, consent_id: str) -> ConsentRow | None:
        rows = self.consent_rows(consent_id=consent_id)
        return rows[0] if rows else None

    def consent_rows(self, install_id: str | None = None, *, consent_id: str | None = None
                     ) -> builtins.list[ConsentRow]:
        """Every consent row kept for the install (`consentseq`, `switches`), or the one row."""
        where, key = ("install_id", install_id) if consent_id is None else ("consent_id",
                                                                            consent_id)
        rows = self._conn.execute(f"SELECT * FROM consent_records WHERE {where} = ?",  # noqa: S608 - a column name of ours
                                  (key,)).fetchall()
        return [ConsentRow(r["consent_id"], r["install_id"], r["payload"].encode()
                           if isinstance(r["payload"], str) else bytes(r["payload"]),
                           r["kid"], bytes(r["signature"]), r["created_at"]) for r in rows]

    def data_version(self) -> int:
        """A counter that changes on every write by any process (cheap poll for the host)."""
        return data_version_in(self._conn)

    def epoch(self) -> int:
        row = self._conn.execute("SELECT epoch FROM install_meta WHERE id = 1").fetchone()
        return int(row[0])

    # ---- writes ---------------------------------------------------------------------------------

    def bump_epoch(self) -> int:
        """Revoke every token of every install (the gate compares the epoch claim)."""
        with self._tx() as c:
            c.execute("UPDATE install_meta SET epoch = epoch + 1 WHERE id = 1")
            row = c.execute("SELECT epoch FROM install_meta WHERE id = 1").fetchone()
        return int(row[0])

    def _insert_consent(self, c: Any, consent: ConsentRow) -> None:
        # A key retired since the consent was signed (a keyring read before a rotation): never
        # written, it would not verify. Read in this transaction, whose write lock
        # `keys host-retire` holds from its count of the key's consents to the retirement.
        keys = None if self.store.local_dir is None else self.store.local_dir / "keys"
        if keys is not None and consent.kid in retired_in(keys):
            raise InstallChanged(f"its consent was signed by host key {consent.kid}, retired "
                                 "meanwhile (`stockade keys host-retire`); nothing was "
                                 "written: run the command again, it signs with the current "
                                 "key")
        c.execute(
            "INSERT INTO consent_records (consent_id, install_id, payload, kid, signature, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (consent.consent_id, consent.install_id, consent.payload.decode(), consent.kid,
             consent.signature, consent.created_at))

    def _hook(self, c: Any, install_id: str, hook: HookName,
              detail: Mapping[str, Any] | None = None) -> LifecycleEvent:
        row = c.execute("SELECT app_id, generation FROM install_installs WHERE install_id = ?",
                        (install_id,)).fetchone()
        now = self._now()
        d = dict(detail or {})
        seq = c.execute(
            "INSERT INTO install_hooks (install_id, app_id, generation, hook, detail, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
            (install_id, row["app_id"], row["generation"], hook, json.dumps(d), now)
        ).fetchall()[0]  # fetchall: finish the statement before COMMIT
        return LifecycleEvent(int(seq[0]), install_id, row["app_id"],
                              int(row["generation"]), hook, d, now)

    def _notify(self, events: builtins.list[LifecycleEvent]) -> None:
        for ev in events:
            for listener in list(self.listeners):
                listener(ev)

    def create(
        self, *, install_id: str, manifest: Manifest, package_hash: str, package_path: Path,
        grants: frozenset[str], settings: Mapping[str, SettingValue],
        publisher: Mapping[str, Any], consent: ConsentRow, app_user_id: str | None = None,
        also: Callable[[Any], object] | None = None,
    ) -> InstallRecord:
        """Insert a new install with its consent record, its app's own server user (None: made
        by the serving host later) and an `install` hook, in one transaction; `also` runs
        first in it (the id's lineage binding: bound only if the install is written)."""
        now = self._now()
        try:
            with self._tx() as c:
                if also is not None:
                    also(c)
                c.execute(
                    "INSERT INTO install_installs (install_id, app_id, version, package_hash, "
                    "manifest_hash, manifest_json, package_path, generation, enabled, grants, "
                    "settings, secret_keys, app_user_id, publisher, consent_id, installed_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (install_id, manifest.id, manifest.version, package_hash,
                     manifest.manifest_hash(), json.dumps(manifest.canonical()),
                     str(package_path), json.dumps(sorted(grants)), json.dumps(dict(settings)),
                     json.dumps(sorted(manifest.secret_keys)), app_user_id,
                     json.dumps(dict(publisher)), consent.consent_id, now, now))
                self._insert_consent(c, consent)
                ev = self._hook(c, install_id, "install")
        except INTEGRITY_ERRORS as exc:
            raise InstallError(
                f"app {manifest.id!r} is already installed; use `stockade app update "
                f"{manifest.id} PKG` to change its version") from exc
        self._notify([ev])
        rec = self.get(install_id)
        assert rec is not None
        return rec

    def set_enabled(self, install_id: str, enabled: bool, reason: str | None = None, *,
                    consent: ConsentRow | None = None, expect: InstallRecord | None = None
                    ) -> None:
        """Enable or disable; disabling bumps the generation (every token dies). `consent`:
        the operator's signed switch (`switches.py`), written only if `expect` still stands.
        An enable (also of an enabled app) clears a crash-loop stop: the operator acted."""
        with self._tx() as c:
            if expect is not None:
                _unchanged_in(c, expect)
            if consent is not None:
                self._insert_consent(c, consent)
                c.execute("UPDATE install_installs SET consent_id = ? WHERE install_id = ?",
                          (consent.consent_id, install_id))
            c.execute(
                "UPDATE install_installs SET enabled = ?, disabled_reason = ?, "
                "generation = generation + ?, updated_at = ? WHERE install_id = ?",
                (int(enabled), None if enabled else reason, 0 if enabled else 1, self._now(),
                 install_id))
            if enabled:
                c.execute("UPDATE install_installs SET crash_stop = NULL WHERE install_id = ?",
                          (install_id,))
            ev = self._hook(c, install_id, "enable" if enabled else "disable",
                            {"reason": reason} if reason else None)
        self._notify([ev])

    def bump_generation(self, install_id: str) -> int:
        with self._tx() as c:
            c.execute("UPDATE install_installs SET generation = generation + 1 WHERE "
                      "install_id = ?", (install_id,))
            row = c.execute("SELECT generation FROM install_installs WHERE install_id = ?",
                            (install_id,)).fetchone()
        return int(row[0]) if row else 0

    def set_crash_stop(self, install_id: str, why: str) -> None:
        """The serving host stopped the app for crash-looping (`why`), until an enable."""
        with self._tx() as c:
            c.execute("UPDATE install_installs SET crash_stop = ? WHERE install_id = ?",
                      (why, install_id))

    def set_app_user_id(self, install_id: str, app_user_id: str | None) -> None:
        """Record the app's own server user (set by the supervisor at first start)."""
        with self._tx() as c:
            c.execute("UPDATE install_installs SET app_user_id = ? WHERE install_id = ?",
                      (app_user_id, install_id))

    def set_settings(self, install_id: str, settings: Mapping[str, SettingValue],
                     changed: builtins.list[str]) -> None:
        """Set the `changed` keys to their values in `settings` (already validated), merged
        into the settings as they stand inside the write, and record `settings_changed`: a key
        another operator set meanwhile keeps its value. A `changed` key absent from `settings`
        is unset (an optional setting emptied: the app sees it as never set). InstallChanged
        when the app is no longer installed."""
        with self._tx() as c:
            row = c.execute("SELECT settings FROM install_installs WHERE install_id = ?",
                            (install_id,)).fetchone()
            if row is None:
                raise InstallChanged(f"install {install_id} is no longer installed (uninstalled "
                                     "meanwhile): nothing changed")
            merged = {**json.loads(row[0]), **{k: settings[k] for k in changed if k in settings}}
            for k in changed:
                if k not in settings:
                    merged.pop(k, None)
            c.execute("UPDATE install_installs SET settings = ?, updated_at = ? "
                      "WHERE install_id = ?", (json.dumps(merged), self._now(), install_id))
            # The hook names the keys only: values (secrets) never go into hook details.
            ev = self._hook(c, install_id, "settings_changed", {"keys": sorted(changed)})
        self._notify([ev])

    def check_unchanged(self, rec: InstallRecord) -> None:
        """InstallChanged unless `rec`'s consent, settings and pending update still stand (a
        read: `apply_update(expect=...)` checks again inside its write)."""
        with self._tx(count=False) as c:
            _unchanged_in(c, rec)

    def set_pending(self, install_id: str, *, manifest: Manifest, package_hash: str,
                    package_path: Path, publisher: Mapping[str, Any],
                    diff: Mapping[str, Any]) -> None:
        """Park a new version until the operator consents (replaces an older pending one)."""
        with self._tx() as c:
            c.execute("DELETE FROM install_pending WHERE install_id = ?", (install_id,))
            c.execute(
                "INSERT INTO install_pending (install_id, version, package_hash, manifest_hash, "
                "manifest_json, package_path, publisher, diff, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (install_id, manifest.version, package_hash, manifest.manifest_hash(),
                 json.dumps(manifest.canonical()), str(package_path),
                 json.dumps(dict(publisher)), json.dumps(dict(diff)), self._now()))

    def clear_pending(self, install_id: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM install_pending WHERE install_id = ?", (install_id,))

    def apply_update(
        self, install_id: str, *, manifest: Manifest, package_hash: str, package_path: Path,
        grants: frozenset[str], settings: Mapping[str, SettingValue],
        publisher: Mapping[str, Any], consent: ConsentRow, diff: Mapping[str, Any],
        hook: HookName = "update", expect: InstallRecord | None = None,
        also: Callable[[Any], object] | None = None,
    ) -> None:
        """Switch to a new version (or re-confirm the current one): new grants and consent,
        generation bumped, pending and a crash-loop stop cleared, `hook` recorded. `expect`:
        the record the change was computed from; InstallChanged (nothing written) when it no
        longer stands. `also` runs in the same transaction once `expect` holds (the id's
        lineage binding: moved only if the update is written)."""
        with self._tx() as c:
            if expect is not None:
                _unchanged_in(c, expect)
            if also is not None:
                also(c)
            self._insert_consent(c, consent)
            c.execute(
                "UPDATE install_installs SET version = ?, package_hash = ?, manifest_hash = ?, "
                "manifest_json = ?, package_path = ?, grants = ?, settings = ?, "
                "secret_keys = ?, publisher = ?, consent_id = ?, generation = generation + 1, "
                "crash_stop = NULL, updated_at = ? WHERE install_id = ?",
                (manifest.version, package_hash, manifest.manifest_hash(),
                 json.dumps(manifest.canonical()), str(package_path),
                 json.dumps(sorted(grants)), json.dumps(dict(settings)),
                 json.dumps(sorted(manifest.secret_keys)), json.dumps(dict(publisher)),
                 consent.consent_id, self._now(), install_id))
            c.execute("DELETE FROM install_pending WHERE install_id = ?", (install_id,))
            ev = self._hook(c, install_id, hook, {"version": manifest.version,
                                                  "diff": dict(diff)})
        self._notify([ev])

    def remove(self, install_id: str, detail: Mapping[str, Any] | None = None,
               also: Callable[[Any, str], int] | None = None) -> int | None:
        """Delete the install (consent rows stay as history); records an `uninstall` hook.
        InstallGone (nothing written) when it is not installed any more. `also` runs in the
        same transaction, on this store's connection (the install's rows in tables of the same
        store: its persistence data, `remove_all_in`); its result is returned."""
        done = None
        with self._tx() as c:
            # Under the write lock: of two uninstalls that both read the install, the second
            # finds it gone here and deletes nothing (it failed on the missing row before).
            if c.execute("SELECT 1 FROM install_installs WHERE install_id = ?",
                         (install_id,)).fetchone() is None:
                raise InstallGone(f"{install_id} was already uninstalled (another operator, "
                                  "meanwhile): nothing changed")
            if also is not None:
                done = also(c, install_id)
            # The id stays bound to its publisher after the install goes (DESIGN rule 11).
            keep_binding_in(c, install_id)
            c.execute("UPDATE install_installs SET generation = generation + 1, enabled = 0 "
                      "WHERE install_id = ?", (install_id,))
            ev = self._hook(c, install_id, "uninstall", detail)
            c.execute("DELETE FROM install_pending WHERE install_id = ?", (install_id,))
            c.execute("DELETE FROM install_installs WHERE install_id = ?", (install_id,))
        self._notify([ev])
        return done

    # ---- hooks for the supervisor ---------------------------------------------------------------

    def pending_hooks(self, install_id: str | None = None) -> builtins.list[LifecycleEvent]:
        """Recorded hooks not yet run, oldest first."""
        sql = "SELECT * FROM install_hooks WHERE done_at IS NULL"
        args: tuple[Any, ...] = ()
        if install_id is not None:
            sql += " AND install_id = ?"
            args = (install_id,)
        rows = self._conn.execute(sql + " ORDER BY seq", args).fetchall()
        return [LifecycleEvent(int(r["seq"]), r["install_id"], r["app_id"], int(r["generation"]),
                               r["hook"], json.loads(r["detail"]), r["created_at"]) for r in rows]

    def mark_hook_done(self, seq: int) -> None:
        """The hook ran: its row goes (nothing reads a done row; the change that queued it is
        an operator record in the audit chain). Kept, done rows grew by two per disable/enable
        cycle for the life of the home, and every sync's `pending_hooks` scanned them all
        (DESIGN rule 13). Rows an older version left marked done go with the first hook done
        here."""
        with self._tx(count=False) as c:
            c.execute("DELETE FROM install_hooks WHERE seq = ? OR done_at IS NOT NULL", (seq,))


def _unchanged_in(c: Any, rec: InstallRecord) -> None:
    """InstallChanged unless the install's consent, settings and pending update are still the
    ones in `rec`, as `c` sees them (inside a write: as it will commit)."""
    row = c.execute("SELECT consent_id, settings FROM install_installs WHERE install_id = ?",
                    (rec.install_id,)).fetchone()
    pending = c.execute("SELECT package_hash FROM install_pending WHERE install_id = ?",
                        (rec.install_id,)).fetchone()
    if row is None:
        raise InstallChanged(f"{rec.app_id} was uninstalled meanwhile: nothing changed")
    was = rec.pending.package_hash if rec.pending is not None else None
    if str(row[0]) != rec.consent_id or json.loads(row[1]) != dict(rec.settings) \
            or (None if pending is None else str(pending[0])) != was:
        raise InstallChanged(f"{rec.app_id} changed meanwhile (another operator's consent, "
                             "update or settings): nothing changed")
