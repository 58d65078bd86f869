"""The host's Ed25519 signing keyring: signs capability tokens and consent records.

Keys live in HOME/keys/ as `<kid>.key` (raw 32-byte private key, mode 0600) with a small
`keyring.json` naming the current signing key and the retired ones; `<kid>.pub` is another
host's key, verify only, adopted from a shared store (`host.keys.shared`). Rotation without
downtime: `rotate()` makes a new current key; older keys keep verifying until `retire(kid)`.
A retired or unknown key id never verifies.

Another process (the CLI) rotates or retires while a host serves: the host calls `refresh()`
(its watcher thread), which re-reads `keyring.json` and any new key file when the file changed,
so a consent the CLI signed with the new key verifies in the running host, and a retired key
stops verifying there too.

Every change to the keyring's files (`rotate`, `retire`, `add_public`, the first key) holds
`keys/.keyring.lock` across re-reading `keyring.json`, changing it and writing it back, and
writes through a private fsynced temporary file renamed into place (`host.fsio`): two operators
(or an operator and a serving host adopting a published retirement) never write back a set one
of them read before the other's change, so a retirement is never silently undone. Readers
(`open`, `refresh`) take no lock: they see the old file or the new one.

The private keys never leave this process: children are spawned or forked from a zygote that
was started as a fresh interpreter with an empty environment, so no key is in their memory.
"""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from host.errors import StartRefused
from host.fsio import atomic_write, flocked

_LOCK = ".keyring.lock"

# Key ids are short random hex strings; the pattern guards file names built from them.
_KID_CHARS = frozenset("0123456789abcdef")
_KID_LEN = 16


class KeyError_(Exception):
    """The keyring is missing, unreadable or refers to an unknown key."""


# What the operator does about a keyring whose files do not read (`KeyringDamaged`).
DAMAGED_HINT = ("restore HOME/keys from a backup (keyring.json names the current key, each "
                "<kid>.key holds one); `stockade doctor` shows every check")


class KeyringDamaged(KeyError_, StartRefused):
    """The keyring's files do not read (an edited or cut keyring.json, a key file of the wrong
    size, the current key's file gone): the operator's to restore, said by every command and
    `serve` in one line with how (a `StartRefused`), never as a bug to report."""

    def __init__(self, message: str) -> None:
        StartRefused.__init__(self, message, DAMAGED_HINT)


def _stamp_of(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def retired_in(keys_dir: Path) -> frozenset[str]:
    """The key ids `keys_dir`'s keyring.json retires as it stands now (none without one),
    read afresh: a consent's write checks its key against it in the write's own transaction,
    so no consent signed by a key `keys host-retire` retired meanwhile is written (a keyring
    read before a rotation still signs with the old key). `KeyError_` when it is unreadable."""
    meta = keys_dir / "keyring.json"
    try:
        data = json.loads(meta.read_text())
        return frozenset(str(k) for k in data.get("retired", []))
    except FileNotFoundError:
        return frozenset()
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise KeyError_(f"keyring metadata {meta} is unreadable: {exc}") from exc


def valid_kid(kid: str) -> bool:
    """Whether `kid` has a key id's form (16 hex digits); guards file names and messages."""
    return len(kid) == _KID_LEN and set(kid) <= _KID_CHARS


@dataclass
class Keyring:
    keys_dir: Path
    current: str
    retired: set[str] = field(default_factory=set)
    _private: dict[str, Ed25519PrivateKey] = field(default_factory=dict, repr=False)
    _public: dict[str, Ed25519PublicKey] = field(default_factory=dict, repr=False)
    # (inode, mtime_ns, size) of keyring.json when last read: `refresh` re-reads on a change.
    _stamp: tuple[int, int, int] | None = field(default=None, repr=False)
    # Counts changes to what verifies here (a key added, rotated in or retired), whoever made
    # them: a host's watcher re-checks consents that were waiting for a key when it moves.
    changes: int = field(default=0, repr=False)
    # The key that was current when `rotate` made the new one (read under the lock).
    previous: str = field(default="", repr=False)

    @staticmethod
    def exists(keys_dir: Path) -> bool:
        """Whether `keys_dir` already holds a keyring (else `open` generates a first key)."""
        return (keys_dir / "keyring.json").exists()

    @classmethod
    def open(cls, keys_dir: Path) -> Keyring:
        """Open the keyring in `keys_dir`, creating a first key if there is none."""
        keys_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(keys_dir, 0o700)
        meta = keys_dir / "keyring.json"
        if not meta.exists():
            with flocked(keys_dir / _LOCK):  # two first opens make one first key, not two
                if not meta.exists():
                    ring = cls(keys_dir=keys_dir, current="")
                    ring._rotate_locked()
                    return ring
        return cls._read(keys_dir)

    @classmethod
    def _read(cls, keys_dir: Path) -> Keyring:
        meta = keys_dir / "keyring.json"
        try:
            data = json.loads(meta.read_text())
            current = str(data["current"])
            retired = {str(k) for k in data.get("retired", [])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyringDamaged(f"keyring metadata {meta} is unreadable: {exc}") from exc
        ring = cls(keys_dir=keys_dir, current=current, retired=retired)
        path = meta
        try:
            for path in keys_dir.glob("*.key"):
                if valid_kid(path.stem):
                    ring._load(path.stem)
            for path in keys_dir.glob("*.pub"):  # other hosts' keys (`host.keys.shared`)
                if valid_kid(path.stem) and path.stem not in ring._public:
                    ring._public[path.stem] = Ed25519PublicKey.from_public_bytes(
                        path.read_bytes())
        except (OSError, ValueError) as exc:  # a cut or edited key file: no key at all
            raise KeyringDamaged(f"host key file {path} does not read: {exc}") from exc
        if current not in ring._private:
            raise KeyringDamaged(f"current signing key {current[:40]!r} is missing from "
                                 f"{keys_dir}")
        ring._stamp = _stamp_of(meta)
        return ring

    def refresh(self) -> bool:
        """Follow a rotation or retirement made by another process; True when anything changed.

        New keys are added before the current key and the retired set move, so a signature by
        the new current key always finds its public key here. Keys are never dropped: a key that
        is no longer trusted is in `retired`, which is what `verify` refuses."""
        meta = self.keys_dir / "keyring.json"
        stamp = _stamp_of(meta)
        if stamp is None or stamp == self._stamp:
            return False
        fresh = Keyring._read(self.keys_dir)
        changed = fresh.current != self.current or fresh.retired != self.retired \
            or set(fresh._public) != set(self._public)
        self._private.update(fresh._private)
        self._public.update(fresh._public)
        self.retired = set(fresh.retired)
        self.current = fresh.current
        self._stamp = fresh._stamp
        self.changes += int(changed)
        return changed

    @classmethod
    def ephemeral(cls) -> Keyring:
        """A keyring held only in memory (for `sandbox exec`, which has no home folder)."""
        ring = cls(keys_dir=Path("/nonexistent"), current=secrets.token_hex(_KID_LEN // 2))
        key = Ed25519PrivateKey.generate()
        ring._private[ring.current] = key
        ring._public[ring.current] = key.public_key()
        return ring

    def _load(self, kid: str) -> None:
        raw = (self.keys_dir / f"{kid}.key").read_bytes()
        key = Ed25519PrivateKey.from_private_bytes(raw)
        self._private[kid] = key
        self._public[kid] = key.public_key()

    def _save_meta(self) -> None:
        """Write `keyring.json` (the caller holds the lock and has just re-read it)."""
        meta = self.keys_dir / "keyring.json"
        data = json.dumps({"current": self.current, "retired": sorted(self.retired)})
        atomic_write(meta, data.encode(), 0o600)
        self._stamp = _stamp_of(meta)

    def _follow(self) -> None:
        """Under the lock: take on what another process wrote since this keyring was read
        (`refresh`), so the change made next is made to the keyring as it stands."""
        self.refresh()

    def rotate(self) -> str:
        """Make a new current signing key; the previous one (the current key as it stands
        when the lock is held, kept in `previous`) still verifies until retired."""
        with flocked(self.keys_dir / _LOCK):
            self._follow()
            return self._rotate_locked()

    def _rotate_locked(self) -> str:
        kid = secrets.token_hex(_KID_LEN // 2)
        key = Ed25519PrivateKey.generate()
        from cryptography.hazmat.primitives import serialization

        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        path = self.keys_dir / f"{kid}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())  # durable before keyring.json names it current
        self._private[kid] = key
        self._public[kid] = key.public_key()
        self.previous = self.current
        self.current = kid
        self._save_meta()
        self.changes += 1
        return kid

    def add_public(self, kid: str, raw: bytes) -> None:
        """Accept signatures by another host's key `kid` (verify only: this host never signs
        with it). The caller has checked who vouches for it (`host.keys.shared`)."""
        if not valid_kid(kid):
            raise KeyError_(f"invalid key id {kid[:32]!r}")
        key = Ed25519PublicKey.from_public_bytes(raw)
        with flocked(self.keys_dir / _LOCK):
            atomic_write(self.keys_dir / f"{kid}.pub", raw, 0o644)
        if kid not in self._public:
            self._public[kid] = key
            self.changes += 1

    def retire(self, kid: str,
               unused: Callable[[], AbstractContextManager[object]] | None = None) -> None:
        """Stop accepting signatures by `kid` (it can no longer be the current key).

        `unused()`: a block, entered under the keyring's lock, that raises when something still
        depends on `kid` and otherwise holds that answer until `keyring.json` names it retired
        (`keys host-retire`: the store's write lock across its count of the consents signed by
        it, and a consent's write refuses a key retired by then, `retired_in`)."""
        with flocked(self.keys_dir / _LOCK):
            self._follow()
            if kid == self.current:
                raise KeyError_("cannot retire the current signing key; rotate first")
            with unused() if unused is not None else nullcontext():
                self.retired.add(kid)
                try:
                    self._save_meta()
                except BaseException:
                    self.retired.discard(kid)  # not retired: this keyring says so too
                    raise
        self.changes += 1

    def sign(self, data: bytes, kid: str | None = None) -> tuple[str, bytes]:
        """Sign with the current key (or `kid`, read from `current` by the caller before it
        built the signed data: a refresh in between must not sign under another key id)."""
        kid = self.current if kid is None else kid
        if kid in self.retired:
            raise KeyError_(f"key {kid} is retired")
        return kid, self._private[kid].sign(data)

    def verify(self, kid: str, data: bytes, signature: bytes) -> None:
        """Raise `InvalidSignature` unless `signature` is a valid, live key's signature."""
        if not valid_kid(kid) or kid in self.retired or kid not in self._public:
            raise InvalidSignature(f"unknown or retired key id {kid[:32]!r}")
        self._public[kid].verify(signature, data)

    def knows(self, kid: str) -> bool:
        """Whether `kid` is a key this keyring holds (live or retired)."""
        return kid in self._public

    def public_keys(self) -> dict[str, bytes]:
        from cryptography.hazmat.primitives import serialization

        return {
            kid: pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            for kid, pub in self._public.items()
        }
