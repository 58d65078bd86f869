"""Host key rotations and retirements reach every host sharing a PostgreSQL store, signed.

A consent record signed on one host must verify on every host, so every host must know every
host signing key's public half. The private keys never leave the host that made them (nor go
into the store). What travels is the public half of a new key, signed by the key it replaces,
and a retirement, signed by the current key: `stockade keys host-rotate` and `host-retire` on a
shared store publish them (`publish_rotation`, `publish_retirement`). Each serving host adopts
them from its upkeep (`adopt_keys`): a published key only when its signer is a live key this
host already holds (its own, or one it adopted before: a chain back to the keyring the
operator copied), a retirement only when signed by such a key. An adopted public key is a
verify-only key in this host's keyring (`HOME/keys/<kid>.pub`); this host never signs with it.

Why the signer must already be trusted: the store is not. Whoever can write it could
otherwise add a key of their own and sign consents with it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature

from host.keys.keyring import Keyring, valid_kid
from host.store import SchemaItem, StoreTarget, open_store

log = logging.getLogger("stockade.keys")

SCHEMA_COMPONENT = "published_keys"
SCHEMA_VERSION = 1
DDL: tuple[SchemaItem, ...] = (
    "CREATE TABLE IF NOT EXISTS published_keys(kid TEXT PRIMARY KEY, public_key BLOB NOT NULL,"
    " signer TEXT NOT NULL, signature BLOB NOT NULL, retire_signer TEXT,"
    " retire_signature BLOB, at REAL NOT NULL)",
)
_ROTATION = b"stockade-host-key/1 "
_RETIREMENT = b"stockade-host-key-retired/1 "


def _rotation_payload(kid: str, public_key: bytes) -> bytes:
    return _ROTATION + kid.encode() + b" " + public_key


def _retirement_payload(kid: str) -> bytes:
    return _RETIREMENT + kid.encode()


def publish_rotation(target: StoreTarget, keyring: Keyring, previous: str) -> None:
    """Publish the keyring's new current key, signed by `previous` (the key it replaces)."""
    kid = keyring.current
    public = keyring.public_keys()[kid]
    signer, signature = keyring.sign(_rotation_payload(kid, public), previous)
    _publish(target, kid, public, signer, signature, retired=False)


def publish_retirement(target: StoreTarget, keyring: Keyring, kid: str) -> None:
    """Publish that `kid` is retired, signed by the current key."""
    signer, signature = keyring.sign(_retirement_payload(kid))
    # A key copied by hand (never published) is published here with its retirement; its own
    # signature field is the retirement's (never adopted as a new key: every host that knows
    # it has it already).
    _publish(target, kid, keyring.public_keys()[kid], signer, signature, retired=True)


def _publish(target: StoreTarget, kid: str, public: bytes, signer: str, signature: bytes, *,
             retired: bool) -> None:
    store = open_store(target)
    try:
        with store.transaction() as c:
            c.execute("INSERT INTO published_keys(kid, public_key, signer, signature, at)"
                      " VALUES(?, ?, ?, ?, ?) ON CONFLICT(kid) DO NOTHING",
                      (kid, public, signer, signature, time.time()))
            if retired:
                c.execute("UPDATE published_keys SET retire_signer = ?, retire_signature = ?"
                          " WHERE kid = ?", (signer, signature, kid))
    finally:
        store.close()


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
    """Add every published key whose signer this host trusts, then apply every retirement
    signed by a key it trusts. Returns what changed ("+kid", "-kid"). Keys whose signer is not
    (yet) known are left for a later pass; a bad signature is refused and reported once."""
    store = open_store(target, readonly=True)
    try:
        rows = store.conn().execute(
            "SELECT kid, public_key, signer, signature, retire_signer, retire_signature"
            " FROM published_keys ORDER BY at").fetchall()
    finally:
        store.close()
    keyring.refresh()
    changed: list[str] = []
    pending = [r for r in rows if str(r[0]) not in keyring.public_keys()]
    progress = True
    while pending and progress:  # a chain K1 -> K2 -> K3 adopts in one call
        progress = False
        for row in list(pending):
            kid, public, signer, signature = str(row[0]), bytes(row[1]), str(row[2]), \
                bytes(row[3])
            if not (valid_kid(kid) and valid_kid(signer)):
                pending.remove(row)  # not a key id: nothing of it is echoed, nothing adopted
                _refuse(refused, "a published host key row with a malformed key id refused")
                continue
            if signer not in keyring.public_keys() or signer in keyring.retired:
                continue
            pending.remove(row)
            try:
                keyring.verify(signer, _rotation_payload(kid, public), signature)
            except InvalidSignature:
                _refuse(refused, f"published host key {kid[:16]} refused: its signature by "
                        f"{signer[:16]} does not verify")
                continue
            keyring.add_public(kid, public)
            changed.append(f"+{kid}")
            progress = True
    for row in rows:
        kid, signer = str(row[0]), row[4]
        if signer is None or kid in keyring.retired or kid not in keyring.public_keys() \
                or not valid_kid(str(signer)):
            continue
        if kid == keyring.current:
            _refuse(refused, f"retirement of {kid[:16]} refused: it is this host's current "
                    "key (rotate here first)")
            continue
        try:
            keyring.verify(str(signer), _retirement_payload(kid), bytes(row[5]))
        except InvalidSignature:
            _refuse(refused, f"retirement of {kid[:16]} refused: its signature does not verify")
            continue
        keyring.retire(kid)
        changed.append(f"-{kid}")
    return changed


def _refuse(refused: Callable[[str], object] | None, why: str) -> None:
    if refused is None:
        log.error("%s", why)
    else:
        refused(why)
