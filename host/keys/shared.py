"""Host key rotations and retirements reach every host sharing a PostgreSQL store, signed.

A consent record signed on one host must verify on every host, so every host must know every
host signing key's public half. The private keys never leave the host that made them (nor go
into the store). What travels is the public half of a new key, signed by the key it replaces,
and a retirement, signed by the current key: `stockade keys host-rotate` and `host-retire` on a
shared store publish them (`publish_rotation`, `publish_retirement`). Each serving host adopts
them from its upkeep (`adopt_keys`): a published key only when its signer is a live key this
host already holds (its own, or one it adopted before: a chain back to the keyring the
operator copied), a retirement only when signed by such a key. Retirements are applied
before keys, and a key signed by a retired key is never adopted, whatever order the rows arrive
in (`_Pass` says why). An adopted public key is a verify-only key in this host's keyring
(`HOME/keys/<kid>.pub`); this host never signs with it.

Why the signer must already be trusted: the store is not. Whoever can write it could
otherwise add a key of their own and sign consents with it.

Why nothing published is ever rewritten or removed: a retired key is one whose private half
leaked, and whoever holds it and can write the store would otherwise take the retirement back
(a host that had not applied it yet, being down or between polls, would keep the key live and
adopt keys "rotated" from it) or rewrite a key's signer. So a retirement is a row of its own in
`published_retirements`, and both tables refuse UPDATE, DELETE and TRUNCATE in the engine, as
`published_policy` does (a guard against host code and a store writer who is not the tables'
owner; the owner can drop it). One retirement per key, the first published: a second one,
made by the thief with a key of their own, would vouch for that key as the line that signed it
(`_Pass`); a first one that verifies nowhere is refused by every host and reported to the
operator who publishes after it (`RetirementNotPublished`). What holds against the owner too:
a retirement a host applied stays in its own keyring on its disk (`keyring.json`), whatever
the store says later, and a key signed by the retired key is refused there.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host.keys.keyring import KeyError_, Keyring, valid_kid
from host.store import AppendOnly, SchemaItem, Step, StoreTarget, open_store

log = logging.getLogger("stockade.keys")

SCHEMA_COMPONENT = "published_keys"
SCHEMA_VERSION = 2
DDL: tuple[SchemaItem, ...] = (
    # `retire_signer`, `retire_signature`: where version 1 kept a retirement (an UPDATE of the
    # key's row); read by the step below only.
    "CREATE TABLE IF NOT EXISTS published_keys(kid TEXT PRIMARY KEY, public_key BLOB NOT NULL,"
    " signer TEXT NOT NULL, signature BLOB NOT NULL, retire_signer TEXT,"
    " retire_signature BLOB, at REAL NOT NULL)",
    # Version 2: a retirement is a row of its own, and nothing published is rewritten or
    # removed (module docstring). A store's version-1 retirements move into their rows.
    "CREATE TABLE IF NOT EXISTS published_retirements(kid TEXT PRIMARY KEY,"
    " signer TEXT NOT NULL, signature BLOB NOT NULL, at REAL NOT NULL)",
    Step(2, "INSERT INTO published_retirements(kid, signer, signature, at)"
            " SELECT kid, retire_signer, retire_signature, at FROM published_keys"
            " WHERE retire_signer IS NOT NULL AND retire_signature IS NOT NULL"),
    AppendOnly("published_keys", "published host keys are append-only"),
    AppendOnly("published_retirements", "published host key retirements are append-only"),
)
_ROTATION = b"stockade-host-key/1 "
_RETIREMENT = b"stockade-host-key-retired/1 "


def _rotation_payload(kid: str, public_key: bytes) -> bytes:
    return _ROTATION + kid.encode() + b" " + public_key


def _retirement_payload(kid: str) -> bytes:
    return _RETIREMENT + kid.encode()


class RetirementNotPublished(KeyError_):
    """The store already holds another retirement of the key, one this host's keys do not
    verify: it holds the place (append-only), so the other hosts cannot learn this one."""


def publish_rotation(target: StoreTarget, keyring: Keyring, previous: str) -> None:
    """Publish the keyring's new current key, signed by `previous` (the key it replaces)."""
    kid = keyring.current
    public = keyring.public_keys()[kid]
    signer, signature = keyring.sign(_rotation_payload(kid, public), previous)
    store = open_store(target)
    try:
        with store.transaction() as c:
            c.execute("INSERT INTO published_keys(kid, public_key, signer, signature, at)"
                      " VALUES(?, ?, ?, ?, ?) ON CONFLICT(kid) DO NOTHING",
                      (kid, public, signer, signature, time.time()))
    finally:
        store.close()


def publish_retirement(target: StoreTarget, keyring: Keyring, kid: str) -> None:
    """Publish that `kid` is retired, signed by the current key. Raises
    `RetirementNotPublished` when another retirement of `kid`, one that does not verify here,
    holds its place in the store (someone wrote it there first)."""
    signer, signature = keyring.sign(_retirement_payload(kid))
    store = open_store(target)
    try:
        with store.transaction() as c:
            c.execute("INSERT INTO published_retirements(kid, signer, signature, at)"
                      " VALUES(?, ?, ?, ?) ON CONFLICT(kid) DO NOTHING",
                      (kid, signer, signature, time.time()))
            row = c.execute("SELECT signer, signature FROM published_retirements"
                            " WHERE kid = ?", (kid,)).fetchone()
    finally:
        store.close()
    held_by, held = str(row[0]), bytes(row[1])
    if (held_by, held) == (signer, signature) or _signed_by(keyring, held_by, kid, held):
        return  # ours, or an earlier genuine one (from another host): every host applies it
    raise RetirementNotPublished(
        f"{kid} is retired on this host, but the shared store already holds a retirement of "
        f"it that this host's keys do not verify (someone wrote it there), and it cannot be "
        f"replaced: retire it on every other host too (`stockade keys host-retire {kid}` "
        "there; each retires it before it says this)")


def _signed_by(keyring: Keyring, signer: str, kid: str, signature: bytes) -> bool:
    """Whether a key this keyring holds (retired since, or not) signed `kid`'s retirement."""
    raw = keyring.public_keys().get(signer)
    if raw is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, _retirement_payload(kid))
    except InvalidSignature:
        return False
    return True


class KeyFollower:
    """One host's side: `adopt()` from its upkeep; each refusal is reported once."""

    def __init__(self, target: StoreTarget, keyring: Keyring,
                 refused: Callable[[str], object]) -> None:
        self.target = target
        self.keyring = keyring
        self._refused = refused
        self._reported: set[str] = set()

    def adopt(self) -> list[str]:
        return adopt_keys(self.target, self.keyring, self._once)

    def _once(self, why: str) -> None:
        if why not in self._reported:
            self._reported.add(why)
            self._refused(why)


def adopt_keys(target: StoreTarget, keyring: Keyring,
               refused: Callable[[str], object] | None = None) -> list[str]:
    """Adopt what is published: retirements first, then keys (see `_Pass`). Returns what
    changed ("+kid", "-kid"). What cannot be verified yet is left for a later pass; a bad
    signature, or a key whose signer is retired, is refused and reported."""
    store = open_store(target, readonly=True)
    try:
        conn = store.conn()
        rows = conn.execute("SELECT kid, public_key, signer, signature FROM published_keys"
                            " ORDER BY at").fetchall()
        retirements = conn.execute(
            "SELECT kid, signer, signature FROM published_retirements").fetchall()
    finally:
        if store is not target:  # a store the caller opened stays theirs to close
            store.close()
    keyring.refresh()
    return _Pass(keyring, refused).run(rows, retirements)


class _Pass:
    """One adopt pass over the published rows, repeated until nothing changes (a chain
    k1 -> k2 -> k3 adopts in one call).

    Why retirements come first, and why a key whose signer has a retirement waiting is held
    back: a key is retired because its private half leaked, and whoever holds it can publish
    keys "rotated" from it. Such a key must never be adopted, however the rows arrive: a host
    that sees the rotation away from k1, k1's retirement and the thief's key in one pass must
    end where a host that saw them one by one ends. So a retirement is applied as soon as its
    signer is known, before any key; a key signed by a retired key is refused; and while a
    retirement of its signer is published but not yet verifiable here, a key waits, unless it
    is on the line from the retired key to the key that signed the retirement (the operator's
    own rotation, which this host needs in order to verify the retirement at all). A key this
    host adopted in an earlier pass, while its signer was still live, stays: the operator
    retires it too if it came from the thief (`stockade keys host-list` names every key).
    """

    def __init__(self, keyring: Keyring, refused: Callable[[str], object] | None) -> None:
        self.keyring = keyring
        self.refused = refused
        self.changed: list[str] = []
        self.known = set(keyring.public_keys())

    def run(self, rows: list[Any], retirements: list[Any]) -> list[str]:
        keys: dict[str, tuple[bytes, str, bytes]] = {}  # kid -> (public, signer, signature)
        claims: dict[str, tuple[str, bytes]] = {}  # retired kid -> (signer, signature)
        for row in rows:
            kid, signer = str(row[0]), str(row[2])
            if not (valid_kid(kid) and valid_kid(signer)):
                # not a key id: nothing of it is echoed, nothing adopted
                _refuse(self.refused, "a published host key row with a malformed key id refused")
                continue
            keys[kid] = (bytes(row[1]), signer, bytes(row[3]))
        for row in retirements:
            kid, signer = str(row[0]), str(row[1])
            if not (valid_kid(kid) and valid_kid(signer)):
                _refuse(self.refused, "a published host key retirement with a malformed key id "
                        "refused")
                continue
            claims[kid] = (signer, bytes(row[2]))
        lines = {kid: _line(keys, kid, signer) for kid, (signer, _sig) in claims.items()}
        pending = sorted(kid for kid in keys if kid not in self.known)
        progress = True
        while progress:
            progress = self._retire(claims)
            for kid in list(pending):
                public, signer, signature = keys[kid]
                if signer in self.keyring.retired:
                    pending.remove(kid)
                    _refuse(self.refused, f"published host key {kid} refused: its signer "
                            f"{signer} is retired")
                elif signer in self.known and (signer not in claims or kid in lines[signer]):
                    pending.remove(kid)
                    progress = self._adopt(kid, public, signer, signature) or progress
        for kid in claims:
            if kid in self.known and any(keys[p][1] == kid for p in pending):
                _refuse(self.refused, f"keys published as signed by {kid} wait: its "
                        "retirement cannot be verified on this host yet")
        return self.changed

    def _retire(self, claims: dict[str, tuple[str, bytes]]) -> bool:
        """Apply every retirement whose signer is a live key here, all verified before any is
        applied (a retirement of k1 by k2 and of k2 by k3 both hold, whatever their order).
        Verified or refused claims leave `claims`; the others wait."""
        ready = {kid: c for kid, c in claims.items() if kid in self.keyring.retired
                 or (kid in self.known and c[0] in self.known
                     and c[0] not in self.keyring.retired)}
        verified: list[str] = []
        for kid, (signer, signature) in ready.items():
            del claims[kid]
            if kid in self.keyring.retired:
                continue
            if kid == self.keyring.current:
                _refuse(self.refused, f"retirement of {kid} refused: it is this host's "
                        "current key (rotate here first)")
                continue
            try:
                self.keyring.verify(signer, _retirement_payload(kid), signature)
            except InvalidSignature:
                _refuse(self.refused, f"retirement of {kid} refused: its signature does not "
                        "verify")
                continue
            verified.append(kid)
        for kid in verified:
            self.keyring.retire(kid)
            self.changed.append(f"-{kid}")
        return bool(verified)

    def _adopt(self, kid: str, public: bytes, signer: str, signature: bytes) -> bool:
        try:
            self.keyring.verify(signer, _rotation_payload(kid, public), signature)
        except InvalidSignature:
            _refuse(self.refused, f"published host key {kid} refused: its signature by "
                    f"{signer} does not verify")
            return False
        self.keyring.add_public(kid, public)
        self.known.add(kid)
        self.changed.append(f"+{kid}")
        return True


def _line(keys: dict[str, tuple[bytes, str, bytes]], retired: str, signer: str) -> set[str]:
    """The published keys from `retired` down to `signer` (the key that signed its
    retirement), following each key's signer; empty when `signer` does not descend from it."""
    line: list[str] = []
    kid = signer
    for _ in range(len(keys) + 1):  # bounded: a cycle in the rows ends the walk
        if kid not in keys or kid in line:
            return set()
        line.append(kid)
        if keys[kid][1] == retired:
            return set(line)
        kid = keys[kid][1]
    return set()


def _refuse(refused: Callable[[str], object] | None, why: str) -> None:
    if refused is None:
        log.error("%s", why)
    else:
        refused(why)
