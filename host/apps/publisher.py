"""Publisher signatures on packages and the operator's trust store of publisher keys.

A publisher signs a package's content hash with an Ed25519 key (`stockade keys generate`). The
signature travels inside the zip as a `SIGNATURE` member (JSON, format-versioned). The host
trusts it only with a key the operator put in HOME/trust (`stockade keys trust`).

Statuses: `trusted` (valid signature by a trusted key), `unknown-publisher` (a valid signature
by a key the operator does not trust), `unsigned`. A signature that does not verify, or that
covers another content hash, is tampering: `PublisherError`, never installable. For a key the
operator does not trust, "valid" means by the public key embedded in `SIGNATURE`, whose key id
must be the one the signature names: it proves nothing about who the publisher is, but it does
prove that one holder of one key signed every version carrying that key id, so a package
cannot pass for the next version of an app by merely naming its publisher's key id (the
update's diff compares key ids).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from host.apps.packages import Package

SIGNATURE_FORMAT = "stockade-signature-v1"
PUBLIC_KEY_PREFIX = "stockade-publisher-key-v1"
# Domain separation: a publisher signature can never be replayed as some other signed message.
_SIGNED_PREFIX = b"stockade-package-signature-v1\0"
# Trust-store names become file names: this pattern guards against paths and odd characters.
TRUST_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

SignatureStatus = Literal["trusted", "unknown-publisher", "unsigned"]


class PublisherError(Exception):
    """A key file or signature is unusable, or a signature does not verify."""


@dataclass(frozen=True)
class TrustedKey:
    name: str
    kid: str
    public: bytes  # raw 32 bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)


@dataclass(frozen=True)
class SignatureCheck:
    """What the disclosure says about who published a package."""

    status: SignatureStatus
    kid: str | None = None
    publisher: str | None = None  # trust-store name when trusted

    def to_dict(self) -> dict[str, str | None]:
        return {"status": self.status, "kid": self.kid, "publisher": self.publisher}


def key_id(public: bytes) -> str:
    """A publisher key id: the first 16 hex digits of sha256(raw public key)."""
    return hashlib.sha256(public).hexdigest()[:16]


def fingerprint(public: bytes) -> str:
    digest = hashlib.sha256(public).hexdigest()
    return ":".join(digest[i:i + 4] for i in range(0, 32, 4))


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# ---- publisher key files -------------------------------------------------------------------------

def generate_keypair(out: Path) -> tuple[Path, Path, str]:
    """Write a private key (PEM, 0600, never overwritten) to `out` and `out.pub`; returns kid."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub_path = out.with_name(out.name + ".pub")
    if os.path.lexists(out) or os.path.lexists(pub_path):  # a link counts
        raise PublisherError(f"{out} or {pub_path} already exists; choose another name")
    raw = _raw_public(key.public_key())
    # Both created new, never through a link (`exists()` is false for a dangling one, which
    # `write_text` followed: a link planted at OUT.pub made the file it names); a pair not
    # written whole is removed, so a run again is not refused by half of it.
    made: list[Path] = []
    try:
        for path, data, mode in ((out, pem, 0o600), (pub_path, public_key_line(raw).encode(),
                                                      0o644)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, mode)
            made.append(path)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
    except BaseException:
        for path in made:
            path.unlink(missing_ok=True)
        raise
    return out, pub_path, key_id(raw)


def public_key_line(raw: bytes) -> str:
    return f"{PUBLIC_KEY_PREFIX} {base64.b64encode(raw).decode()}\n"


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PublisherError(f"cannot read key file {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PublisherError(
            f"{path} is not an unencrypted PEM private key; make one with `stockade keys generate`"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise PublisherError(
            f"{path} is not an Ed25519 key; make one with `stockade keys generate`"
        )
    return key


def parse_public_key(text: str) -> bytes:
    """Parse a `stockade-publisher-key-v1 <base64>` line into 32 raw bytes."""
    parts = text.strip().split()
    if len(parts) != 2 or parts[0] != PUBLIC_KEY_PREFIX:
        raise PublisherError(
            f"not a publisher public key (expected '{PUBLIC_KEY_PREFIX} <base64>')"
        )
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PublisherError("the public key is not valid base64") from exc
    if len(raw) != 32:
        raise PublisherError("the public key is not a 32-byte Ed25519 key")
    return raw


# ---- signing and checking ------------------------------------------------------------------------

def _signed_bytes(content_hash: str) -> bytes:
    return _SIGNED_PREFIX + content_hash.encode()


def sign_package(pkg: Package, key: Ed25519PrivateKey) -> bytes:
    """Return the `SIGNATURE` member for `pkg` signed by `key`."""
    raw = _raw_public(key.public_key())
    doc = {
        "format": SIGNATURE_FORMAT,
        "kid": key_id(raw),
        "public_key": base64.b64encode(raw).decode(),
        "content_hash": pkg.content_hash,
        "signature": base64.b64encode(key.sign(_signed_bytes(pkg.content_hash))).decode(),
    }
    return json.dumps(doc, sort_keys=True).encode()


def check_signature(pkg: Package, trust: TrustStore) -> SignatureCheck:
    """Classify the package's signature; raises PublisherError on tampering."""
    if pkg.signature is None:
        return SignatureCheck("unsigned")
    try:
        doc = json.loads(pkg.signature)
        if not isinstance(doc, dict) or doc.get("format") != SIGNATURE_FORMAT:
            raise ValueError("unknown format")
        kid = str(doc["kid"])
        signed_hash = str(doc["content_hash"])
        sig = base64.b64decode(str(doc["signature"]), validate=True)
        embedded = base64.b64decode(str(doc["public_key"]), validate=True)
    # RecursionError: JSON nested thousands deep fits in the SIGNATURE cap, and the decoder
    # recurses once per level (an uncaught error was a 500 in the console, a CLI traceback).
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        raise PublisherError(
            "the package's SIGNATURE is unreadable; ask the publisher for an intact copy"
        ) from exc
    if signed_hash != pkg.content_hash:
        raise PublisherError(
            "the package's signature covers different content than the package holds: it was "
            "changed after signing; do not install it"
        )
    trusted = trust.by_kid(kid)
    if trusted is None:
        # Nobody vouches for this key, but the key id it names must be earned: without this,
        # anyone could name an installed app's key id and pass as its publisher's next version.
        if len(embedded) != 32 or key_id(embedded) != kid or not _verifies(
                embedded, sig, signed_hash):
            raise PublisherError(
                f"the package's signature names key {kid[:16]!r} but was not made by it: it "
                "is forged or damaged; do not install it")
        return SignatureCheck("unknown-publisher", kid=kid)
    try:
        Ed25519PublicKey.from_public_bytes(trusted.public).verify(sig, _signed_bytes(signed_hash))
    except InvalidSignature as exc:
        raise PublisherError(
            f"the package claims to be signed by trusted publisher {trusted.name!r} but the "
            "signature does not verify: it is forged or damaged; do not install it"
        ) from exc
    return SignatureCheck("trusted", kid=kid, publisher=trusted.name)


def _verifies(public: bytes, sig: bytes, content_hash: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, _signed_bytes(content_hash))
    except InvalidSignature:
        return False
    return True


# ---- the operator's trust store ------------------------------------------------------------------

class TrustStore:
    """Publisher public keys the operator trusts: HOME/trust/<name>.pub."""

    def __init__(self, trust_dir: Path) -> None:
        self.dir = trust_dir

    def list(self) -> list[TrustedKey]:
        if not self.dir.is_dir():
            return []
        out: list[TrustedKey] = []
        for path in sorted(self.dir.glob("*.pub")):
            name = path.stem
            if not TRUST_NAME_RE.fullmatch(name) or path.is_symlink():
                continue
            try:
                raw = parse_public_key(path.read_text())
            except (OSError, PublisherError, UnicodeDecodeError):
                continue  # an unreadable entry trusts nobody
            out.append(TrustedKey(name=name, kid=key_id(raw), public=raw))
        return out

    def by_kid(self, kid: str) -> TrustedKey | None:
        for k in self.list():
            if k.kid == kid:
                return k
        return None

    def add(self, name: str, public_text: str) -> TrustedKey:
        if not TRUST_NAME_RE.fullmatch(name):
            raise PublisherError(
                f"trust name {name[:40]!r} must be lower-case letters, digits, '.', '_' or '-'"
            )
        raw = parse_public_key(public_text)
        for k in self.list():
            if k.name == name:
                raise PublisherError(f"a key named {name!r} is already trusted; untrust it first")
            if k.kid == key_id(raw):
                raise PublisherError(f"this key is already trusted as {k.name!r}")
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{name}.pub"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(public_key_line(raw))
        return TrustedKey(name=name, kid=key_id(raw), public=raw)

    def remove(self, name: str) -> bool:
        if not TRUST_NAME_RE.fullmatch(name):
            return False
        path = self.dir / f"{name}.pub"
        if not path.exists():
            return False
        path.unlink()
        return True
