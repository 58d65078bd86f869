"""A policy change made on one host reaches every host sharing a PostgreSQL store, signed.

Each host decides with the policy files in its own home (`host.gate.policywatch`). On a shared
store, `stockade policy add` and `stockade policy reload` also publish the home's whole policy
folder into the store as a numbered bundle, signed with the host signing key. Every serving host
looks for a newer bundle from its upkeep thread (and once at start), checks its signature
against its own keyring, and only then writes the files into its policy folder, where its
policy watcher loads them as it loads any change: checked first, recorded in the audit chain
(`policy_load … on host ID`) before it decides anything.

Why signed: the store is not trusted with policy. Whoever can write the store could otherwise
widen every app by inserting a permissive file; a bundle whose signature does not verify
against a key this host already holds (the operator copies `keys/` to every host) is refused,
logged once and recorded (`policy_refused`), and the folder is left as it was.

Why a host never goes back: every bundle the operator ever published stays validly signed, so
whoever can write the store could make an older, wider one the newest again by deleting the
rows after it. The bundle table refuses UPDATE, DELETE and TRUNCATE in the engine (a guard
against host code; the store's owner can drop it), and each host keeps the highest bundle it
adopted, version and revision, on its own disk (`HOME/published-policy.json`, written by
rename): a bundle older than that, or another bundle under that same version, is refused and
recorded like a forgery, also after a restart. Recovery from a store that really lost its
newest bundles is publishing again (numbered past what the publishing home adopted).
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from host.errors import StartRefused
from host.fsio import flocked
from host.home import Home, toml_files
from host.keys.keyring import Keyring
from host.keys.shared import KeyFollower
from host.store import AppendOnly, SchemaItem, StoreTarget, open_store

log = logging.getLogger("stockade.policy")

SCHEMA_COMPONENT = "published_policy"
SCHEMA_VERSION = 2
DDL: tuple[SchemaItem, ...] = (
    "CREATE TABLE IF NOT EXISTS published_policy(version INTEGER PRIMARY KEY,"
    " files TEXT NOT NULL, revision TEXT NOT NULL, kid TEXT NOT NULL, signature BLOB NOT NULL,"
    " published_at REAL NOT NULL, origin TEXT NOT NULL)",
    # Version 2: no bundle is rewritten or removed (module docstring: a rollback).
    AppendOnly("published_policy", "published policy bundles are append-only"),
)
# The highest bundle this host adopted, in its home (module docstring). Guards against a
# rollback to an older signed bundle; never in the store it guards.
ADOPTED_FILE = "published-policy.json"
_MAGIC = "stockade-policy-bundle/1"
# A policy file's name in a bundle: one plain file name. Guards the folder against a bundle
# that names `../x` or an absolute path (checked even though the bundle is signed).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.toml$")
# Largest bundle accepted (bytes of its files): guards a host's disk and memory against a
# store that serves an absurd row. The policy loader caps each file far below this.
MAX_BUNDLE_BYTES = 4 * 1024 * 1024


def plain_policy_name(name: str) -> bool:
    """Whether `name` is a policy file name a bundle may carry: `policy add` writes no other
    into the folder (a name every other host would refuse, or one that acts on a terminal)."""
    return _NAME.fullmatch(name) is not None


def unpublishable(folder: Path) -> list[str]:
    """The folder's `*.toml` names no host adopts in a bundle (`plain_policy_name`)."""
    return [p.name for p in toml_files(folder) if not plain_policy_name(p.name)]


class BundleRefused(Exception):
    """A published bundle this host will not use (signature, names, size)."""


def folder_files(folder: Path) -> dict[str, str]:
    """The policy folder's files (every `*.toml`, cases files included), by name."""
    return {p.name: p.read_text(encoding="utf-8") for p in toml_files(folder)
            if p.is_file()}


def _payload(version: int, files: dict[str, str], revision: str) -> bytes:
    return json.dumps({"magic": _MAGIC, "version": version, "files": files,
                       "revision": revision}, sort_keys=True, separators=(",", ":")).encode()


def publish(target: StoreTarget, keyring: Keyring, folder: Path, revision: str,
            origin: str, adopted_file: Path | None = None) -> int:
    """Publish the folder's files as the newest bundle; returns its version. It is numbered
    past the highest bundle this home adopted too (`adopted_file`): hosts refuse a bundle
    under a number they adopted, so a store that lost its newest rows is moved on at once."""
    bad = unpublishable(folder)
    if bad:
        # Every follower refuses such a bundle (`_verified`): published, it would leave them
        # on the old policy while this home's hosts decide with the new.
        raise BundleRefused(f"{bad!r} cannot be published: every host refuses a file name "
                            "that is not a plain NAME.toml")
    files = folder_files(folder)
    floor = _read_floor(adopted_file)
    store = open_store(target)
    try:
        with store.transaction() as c:
            row = c.execute("SELECT max(version) FROM published_policy").fetchone()
            version = max(int(row[0] or 0), floor[0] if floor else 0) + 1
            kid, signature = keyring.sign(_payload(version, files, revision))
            c.execute("INSERT INTO published_policy(version, files, revision, kid, signature,"
                      " published_at, origin) VALUES(?, ?, ?, ?, ?, ?, ?)",
                      (version, json.dumps(files, sort_keys=True), revision, kid, signature,
                       time.time(), origin[:128]))
    finally:
        store.close()
    return version


class PolicyFollower:
    """One host's side: adopt each newer bundle that verifies (see the module docstring)."""

    def __init__(self, target: StoreTarget, keyring: Keyring, folder: Path,
                 refused: Callable[[str], object], adopted_file: Path | None) -> None:
        """`adopted_file`: where this host keeps the highest bundle it adopted (None: in
        memory only, for a follower that never outlives its process)."""
        self.store = open_store(target)
        self.keyring = keyring
        self.folder = folder
        self._refused = refused  # records a refusal in the audit chain
        self._adopted_file = adopted_file
        # The highest bundle adopted, (version, revision): nothing older is ever adopted.
        self.floor = _read_floor(adopted_file)
        # The newest bundle looked at, and the keyring as it was then: a refused bundle is
        # refused once, not at every poll, until the host's keys change (a bundle signed by a
        # key rotated in after the look verifies once that key is adopted).
        self._looked: tuple[int, str, int] | None = None

    def adopt(self) -> int | None:
        """Write the newest bundle into the folder if it verifies and is not older than the
        highest this host adopted; returns its version, or None when there was nothing (valid)
        to adopt."""
        row = self.store.conn().execute(
            "SELECT version, files, revision, kid, signature FROM published_policy"
            " ORDER BY version DESC LIMIT 1").fetchone()
        if row is None:
            return None
        version, revision = int(row[0]), str(row[2])
        self.keyring.refresh()
        looked = (version, revision, self.keyring.changes)
        if looked == self._looked:
            return None
        self._looked = looked
        try:
            if self.floor is not None and (version, revision) != self.floor \
                    and version <= self.floor[0]:
                raise BundleRefused(
                    f"older than bundle {self.floor[0]} (revision {self.floor[1][:80]}), which "
                    "this host adopted: the store lost its newest bundles, or someone rolled it "
                    "back")
            files = self._verified(version, str(row[1]), revision, str(row[3]), bytes(row[4]))
        except BundleRefused as exc:
            log.error("published policy bundle %d refused: %s", version, exc)
            self._refused(f"published bundle {version} refused: {exc}")
            return None
        if files != folder_files(self.folder):
            _replace_folder(self.folder, files)
        if self.floor != (version, revision):
            self.floor = (version, revision)
            _write_floor(self._adopted_file, version, revision)
        return version

    def _verified(self, version: int, files_json: str, revision: str, kid: str,
                  signature: bytes) -> dict[str, str]:
        if len(files_json) > MAX_BUNDLE_BYTES:
            raise BundleRefused(f"{len(files_json)} bytes, over {MAX_BUNDLE_BYTES}")
        try:
            files = json.loads(files_json)
        except ValueError as exc:
            raise BundleRefused(f"unreadable files ({exc})") from None
        if not isinstance(files, dict) or not files or not all(
                isinstance(k, str) and _NAME.fullmatch(k) and isinstance(v, str)
                for k, v in files.items()):
            raise BundleRefused("a file name or body is not a plain policy file")
        self.keyring.refresh()
        try:
            self.keyring.verify(kid, _payload(version, files, revision), signature)
        except Exception as exc:  # noqa: BLE001 - any verification failure is a refusal
            raise BundleRefused(f"its signature does not verify with this host's keys "
                                f"({type(exc).__name__}: {exc})") from None
        return files

    def close(self) -> None:
        self.store.close_all()


def _read_floor(path: Path | None) -> tuple[int, str] | None:
    """The highest bundle adopted, from this host's disk (None: none yet)."""
    if path is None or not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return int(data["version"]), str(data["revision"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # Written whole by rename, so unreadable means someone else wrote it: refuse to start
        # rather than forget the floor (which would let an older bundle back in).
        raise StartRefused(f"{path} is unreadable ({exc})",
                           "restore it from a backup, or remove it to adopt the newest "
                           "published policy bundle again") from None


def _write_floor(path: Path | None, version: int, revision: str) -> None:
    if path is None:
        return
    fd, tmp = tempfile.mkstemp(prefix=".adopted-", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"version": version, "revision": revision}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _replace_folder(folder: Path, files: dict[str, str]) -> None:
    """Make the folder's `*.toml` exactly `files`: each written whole by rename, the others
    removed last (the watcher may see the set mid-way; it refuses a set that does not load and
    picks up the finished one at its next poll)."""
    folder.mkdir(parents=True, exist_ok=True)
    # The folder writers' lock (`Home.policy_lock`): a `policy add` on this host is never
    # checked against a set this replaces meanwhile.
    with flocked(folder):
        _write_folder(folder, files)


def _write_folder(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        fd, tmp = tempfile.mkstemp(prefix=".adopt-", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, folder / name)
    for stale in toml_files(folder):
        if stale.name not in files:
            stale.unlink(missing_ok=True)


class SharedFollower:
    """What a host adopts from a shared store at each poll: other hosts' key rotations and
    retirements first (`host.keys.shared`: a bundle signed by a newly rotated key then
    verifies), then the newest policy bundle."""

    def __init__(self, keys: KeyFollower, policy: PolicyFollower) -> None:
        self.keys = keys
        self.policy = policy

    def adopt(self) -> int | None:
        self.keys.adopt()
        return self.policy.adopt()

    def close(self) -> None:
        self.policy.close()


def follower_for(home: Home, keyring: Keyring,
                 refused: Callable[[str, str], object]) -> SharedFollower | None:
    """A host's follower when its store is shared (None otherwise), having adopted what is
    published already, so the host starts with the published keys and policy. `refused(kind,
    detail)` records a refusal."""
    if home.store_url is None:
        return None
    follower = SharedFollower(
        KeyFollower(home.host_store, keyring, lambda d: refused("key_refused", d)),
        PolicyFollower(home.host_store, keyring, home.policies_dir,
                       lambda d: refused("policy_refused", d), home.root / ADOPTED_FILE))
    follower.adopt()
    return follower
