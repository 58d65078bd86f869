"""The one folder that holds all host state (`--home`, `STOCKADE_HOME`, default `~/.stockade`)."""
from __future__ import annotations

import contextlib
import errno
import os
import re
import sqlite3
import stat
import tomllib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import unquote

from host.errors import StartRefused
from host.fsio import atomic_write, flocked


@dataclass(frozen=True)
class Shared:
    """A PostgreSQL store several hosts share, seen from one host (`host.store.open_store`
    opens it): `local_dir` holds this host's own files, which never live in the store they
    guard (the audit anchor and its key)."""

    url: str
    local_dir: Path

    def __str__(self) -> str:
        return redact_url(self.url)


def redact_url(url: str) -> str:
    """`url` without its password, for messages and `doctor`: the user part's (`u:***@`) and a
    `password=` query parameter's (libpq takes either). Never raises, whatever the text."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    ends = _user_ends(rest)
    at = max(ends) if ends else -1
    shown = f"{rest[:at].split(':', 1)[0]}:***@" if ends else ""
    tail = rest[at + 1:]
    path, q, query = tail.partition("?")
    if q:
        query, hash_, fragment = query.partition("#")
        pairs = [f"{key}=***" if eq and _is_password_key(key) else f"{key}{eq}{value}"
                 for key, eq, value in (pair.partition("=") for pair in query.split("&"))]
        tail = f"{path}?{'&'.join(pairs)}{hash_}{fragment}"
    return f"{head}://{shown}{tail}"


def _user_ends(rest: str) -> list[int]:
    """Where a user part holding a password (`user:password@`) may end in `rest` (a URL after
    its `://`), as each reader could split it: libpq, at the first `@` unless a `/` comes
    first; urlsplit, at the last `@` before the first `/`, `?` or `#`; and, for a password
    written with an unescaped `/` (a base64 one), the last `@` before any `?` (neither reader
    finds it, and the URL is printed in the error that follows)."""
    ends: set[int] = set()
    first_at, first_slash = rest.find("@"), rest.find("/")
    if first_at >= 0 and (first_slash < 0 or first_at < first_slash):
        ends.add(first_at)
    for part in (re.split(r"[/?#]", rest, maxsplit=1)[0], rest.split("?", 1)[0]):
        if "@" in part:
            ends.add(part.rfind("@"))
    return sorted(e for e in ends if ":" in rest[:e])


def _is_password_key(key: str) -> bool:
    # libpq decodes a URI parameter's name before matching it (`pass%77ord` is `password`).
    return unquote(key) == "password"


def url_secrets(url: str) -> list[str]:
    """The secret parts of `url` as written and percent-decoded, longest first: its password
    in the user part (however a reader splits it, `_user_ends`) and in `password=`
    parameters."""
    rest = url.partition("://")[2]
    found = {rest[:end].partition(":")[2] for end in _user_ends(rest)}
    query = url.partition("?")[2].partition("#")[0]
    for key, eq, value in (pair.partition("=") for pair in query.split("&")):
        if eq and _is_password_key(key):
            found.add(value)
    found |= {unquote(s) for s in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub_url_secrets(text: str, url: str) -> str:
    """`text` (a driver's message about `url`, which may quote any part of it, or all of it)
    with every secret part of `url` replaced by `***`."""
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


ENV_VAR = "STOCKADE_HOME"
# Where the host's store is when it is not the home's own SQLite file (a PostgreSQL URL).
STORE_ENV_VAR = "STOCKADE_STORE"
# The home's file naming that store (`url = "postgresql://…"`), read when no option or
# variable names one. It may hold a password: it must be readable by its owner only.
STORE_FILE = "store.toml"
# What a store URL starts with (`--store`, STOCKADE_STORE, store.toml alike).
URL_PREFIXES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class Home:
    root: Path
    #: A PostgreSQL URL several hosts share (docs/SCALE.md); None: the home's own host.db.
    store_url: str | None = None

    @property
    def host_db(self) -> Path:
        """The home's own SQLite store (unused while `store_url` names a shared one)."""
        return self.root / "host.db"

    @property
    def host_store(self) -> Path | Shared:
        """What every store-backed part opens (`host.store.open_store`): the shared store seen
        from this home, or the home's host.db."""
        if self.store_url is None:
            return self.host_db
        return Shared(self.store_url, self.root)

    @property
    def server_store(self) -> Path | str:
        """Where the embedded server keeps its data: with the host's state in a shared store,
        the same PostgreSQL database (several hosts serve one workspace); else server.db."""
        return self.store_url if self.store_url is not None else self.server_db

    def has_host_store(self) -> bool:
        """Whether there is a store to read (read-only commands must not create one)."""
        return self.store_url is not None or self.host_db.exists()

    @property
    def server_db(self) -> Path:
        """The SQLite file holding the embedded server's data: the host's own `host.db`, so a
        call with effects commits its decision, the server's write and its outcome in one
        transaction (DESIGN rule 9, `host.gate.onetx`); or `server.db`, in a home whose server
        was made there before (its data stays; those calls take three commits)."""
        return self.root / "server.db" if self.server_apart else self.host_db

    @property
    def server_apart(self) -> bool:
        """The embedded server's data still in a server.db of its own (a SQLite home made before
        its tables moved into host.db; `stockade store migrate` moves it, `host.mergeserver`).
        Only whether the file exists: a server.db beside a host.db that already holds server
        data is a stray, refused where the server is opened (`host.server.stray`)."""
        return self.store_url is None and (self.root / "server.db").exists()

    def sqlite_files(self) -> tuple[tuple[str, Path], ...]:
        """The home's SQLite stores, each once: ("host store", host.db), and ("server store",
        server.db) where the server's data has a file of its own."""
        if self.server_db == self.host_db:
            return (("host store", self.host_db),)
        return (("host store", self.host_db), ("server store", self.server_db))

    def has_server_data(self) -> bool:
        """Whether the embedded server has been set up in this home (read-only commands must
        not create its tables)."""
        if self.store_url is not None:
            return True
        path = self.server_db
        if not path.exists():
            return False
        if path != self.host_db:
            return True
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as c:
            return c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                             " AND name = 'users'").fetchone() is not None

    @property
    def lease_path(self) -> Path:
        """Locked by every host serving this home (`host.ledger.lease`)."""
        return self.root / "host.lock"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def trust_dir(self) -> Path:
        return self.root / "trust"

    @property
    def packages_dir(self) -> Path:
        return self.root / "packages"

    @property
    def policies_dir(self) -> Path:
        return self.root / "policies"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def default_policy(self) -> Path:
        return self.policies_dir / DEFAULT_POLICY_NAME

    def policy_lock(self) -> AbstractContextManager[None]:
        """An flock on the policy folder itself, held by every writer of the folder across its
        check and its write (`policy add`, `policy fmt`, the shipped default): a file checked
        against the folder is written to the folder as it was checked. Readers (a serving
        host's poll) take none: files are replaced whole by rename."""
        return flocked(self.policies_dir)

    def ensure(self) -> Home:
        """Create the folder tree (0700: it holds signing keys and the consent store).

        The command that creates the policies folder also writes the shipped baseline into it,
        so a fresh home has a policy from its first command on, and a file the operator adds
        later sits beside the baseline instead of replacing it (removing it is a deliberate act).
        """
        fresh_policies = not self.policies_dir.exists()
        folders = (self.root, self.keys_dir, self.trust_dir, self.packages_dir,
                   self.policies_dir, self.logs_dir)
        try:
            self._refuse_foreign(folders[:1])  # before anything is made in it
            for d in folders:
                d.mkdir(parents=True, exist_ok=True)
                if stat.S_IMODE(d.stat().st_mode) != 0o700:  # no write where none is needed
                    os.chmod(d, 0o700)
            self._refuse_foreign(folders)
            if fresh_policies or needs_default_policy(self):
                with self.policy_lock():
                    if needs_default_policy(self):  # another process may have written it
                        write_default_policy(self)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EPERM):
                raise
            # An operator's fault (a file system remounted read-only after I/O errors, a full
            # disk, a home owned by someone else): one clear line, never "unexpected OSError".
            raise StartRefused(
                f"the home {self.root} cannot be written ({exc.strerror or exc})",
                "remount its file system read-write, free space, or fix the folder's owner "
                "and mode; `stockade doctor` shows every check") from None
        return self

    def _refuse_foreign(self, folders: tuple[Path, ...]) -> None:
        why = foreign_hold(self.root, folders)
        if why is not None:
            raise StartRefused(f"the home {self.root} is not this user's alone: {why}",
                               FOREIGN_HINT)


# What the operator does about a home another user can change (`foreign_hold`).
FOREIGN_HINT = ("whoever owns a folder can rename and replace what it holds (the host's keys, "
                "policy and store), whatever its mode: use a home this user made, in folders "
                "only this user and root can change (`stockade init --home NEW_DIR`)")


def foreign_hold(root: Path, folders: tuple[Path, ...]) -> str | None:
    """Why another local user could change the home, or None: one of its `folders` (those
    that exist) is not owned by this process's user, or a folder above it is owned by another
    user than root or this one, or is writable by every user without the sticky bit. A 0700
    mode guards nothing against the folder's owner: a home made in another user's folder (say
    a `/tmp/NAME` they made first) let them swap its policy folder and keys for their own."""
    me = os.geteuid()
    for d in folders:
        try:
            owner = d.stat().st_uid
        except FileNotFoundError:
            continue
        if owner != me:
            return f"{d} is owned by uid {owner}, not by this user (uid {me})"
    for up in root.parents:
        try:
            st = up.stat()
        except OSError:
            continue
        if st.st_uid not in (0, me):
            return f"{up}, a folder above it, is owned by uid {st.st_uid}"
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            return (f"{up}, a folder above it, is writable by every user (mode "
                    f"{stat.S_IMODE(st.st_mode):o}, no sticky bit)")
    return None


DEFAULT_POLICY_NAME = "default.toml"


def toml_files(folder: Path) -> list[Path]:
    """A policy folder's `*.toml` files (cases files included), sorted; none when the folder is
    missing. Hidden names are skipped, as the loader skips them (`policies.loader.is_toml_name`,
    which this module does not import: the policy package costs the CLI's start ~0.4 s): an
    editor's lock link (`.#default.toml`) or a backup is never a policy file."""
    return sorted(p for p in folder.glob("*.toml") if not p.name.startswith("."))


def shipped_default_policy() -> str:
    """The shipped conservative baseline (`policies/shipped/default.toml`)."""
    return resources.files("policies").joinpath("shipped/default.toml").read_text()


def write_default_policy(home: Home) -> Path:
    """Write the shipped baseline as `default.toml`: whole or not at all (a full disk or a kill
    mid-write leaves no empty or cut file that a later run would take for the policy). The
    caller holds `home.policy_lock()`."""
    target = home.default_policy
    atomic_write(target, shipped_default_policy().encode(), 0o644)
    return target


def needs_default_policy(home: Home) -> bool:
    """Whether the folder holds no policy file, or a `default.toml` that is empty or cannot be
    read (left by an earlier release's write on a full disk): both count as no policy."""
    files = [p for p in toml_files(home.policies_dir) if not p.name.endswith(".cases.toml")]
    if not files:
        return True
    if home.default_policy not in files:
        return False
    try:
        return not home.default_policy.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return True


def ensure_policies(home: Home) -> None:
    """A home whose policy folder holds no file (or an empty default.toml) gets the shipped
    baseline policy again."""
    if needs_default_policy(home):
        with home.policy_lock():
            if needs_default_policy(home):
                write_default_policy(home)


def resolve_home(explicit: str | os.PathLike[str] | None = None,
                 store: str | None = None) -> Home:
    """The home (`--home`, `STOCKADE_HOME`, `~/.stockade`) and its store (`--store`,
    `STOCKADE_STORE`, the home's store.toml, else the home's own host.db)."""
    if explicit:
        root = Path(explicit).expanduser().resolve()
    elif os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR]).expanduser().resolve()
    else:
        root = Path("~/.stockade").expanduser().resolve()
    url = store or os.environ.get(STORE_ENV_VAR) or _store_file_url(root)
    return Home(root, url or None)


def _store_file_url(root: Path) -> str | None:
    path = root / STORE_FILE
    try:
        text = path.read_text(encoding="utf-8")
        mode = stat.S_IMODE(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):  # no file (or no home: said elsewhere)
        return None
    except OSError as exc:
        raise StartRefused(f"cannot read {path}: {exc.strerror}",
                           "check its owner and mode") from None
    if mode & 0o077:
        raise StartRefused(f"{path} is readable by others (mode {mode:o}) and may hold the "
                           "store's password", f"chmod 600 {path}")
    try:
        url = tomllib.loads(text).get("url")
    except tomllib.TOMLDecodeError as exc:
        raise StartRefused(f"{path} is not valid TOML ({exc})",
                           'write it as: url = "postgresql://user@host/db"') from None
    if not isinstance(url, str) or not url:
        raise StartRefused(f"{path} names no store", 'write it as: url = "postgresql://…"')
    if not url.startswith(URL_PREFIXES):
        # Checked here as `--store` is checked: anything else was taken for a SQLite path,
        # named with its password in "no store at …" (and a file of that name created).
        raise StartRefused(f"{path} names {redact_url(url)!r}, not a PostgreSQL URL",
                           'write it as: url = "postgresql://…"')
    return url
