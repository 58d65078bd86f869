"""Capability tokens: Ed25519-signed claims bound to one channel.

Format: `stk1.ed25519.<base64url claims JSON>.<base64url signature>`. The leading version
string fixes the algorithm: a verifier never reads an algorithm from the token, so there is no
downgrade (`stk0`, `none`, another algorithm name: refused). The signature covers everything
before the last dot. The key id is a signed claim; the verifier looks the key up by it and a
retired or unknown id never verifies.

A token is verified once per session (an Ed25519 verify costs more than a whole bridge call);
the gate caches the claims and still checks the install record on every call.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
from typing import Annotated, Required, TypedDict, Unpack

from cryptography.exceptions import InvalidSignature
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from host.clock import Clock
from host.keys.keyring import Keyring

PREFIX = "stk1.ed25519."
# A token above this size is refused before any parsing (guards the decoder against floods).
MAX_TOKEN_BYTES = 4096
# Accepted clock difference between issuer and verifier for iat (same host: small).
CLOCK_SKEW_S = 5.0
DEFAULT_TTL_S = 24 * 3600.0
# The longest lifetime a token is minted with or verified at (guards against a token that never
# expires: a NaN or infinite `exp` never compares as past, at `verify` or at the gate). A serving
# host renews its children's tokens before `exp` (`host.supervise.credentials`).
MAX_TTL_S = 7 * 24 * 3600.0
# base64url's alphabet: ASCII only (`str.isalnum` also passes other scripts' digits).
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class TokenError(Exception):
    """The token is malformed, forged, expired, revoked or presented on the wrong channel."""


class Claims(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    app: Annotated[str, Field(max_length=64)]
    ins: Annotated[str, Field(max_length=64)]  # install id
    sid: Annotated[str, Field(max_length=64)]  # session id = the channel it is bound to
    gen: int  # install generation
    epoch: int  # global epoch
    perms: list[Annotated[str, Field(max_length=64)]] = Field(max_length=64)
    pol: Annotated[str, Field(max_length=80)]  # policy revision hash
    iat: float
    exp: float
    jti: Annotated[str, Field(max_length=64)]
    kid: Annotated[str, Field(max_length=32)]


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    """Decode unpadded base64url, its one canonical spelling only: unused low bits set in the
    last character decode to the same bytes, and would make many strings of one token."""
    if not text or len(text) % 4 == 1 or not set(text) <= _B64_CHARS:
        raise TokenError("token is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenError("token is not base64url") from exc
    if _b64e(raw) != text:
        raise TokenError("token is not canonical base64url")
    return raw


class TokenFields(TypedDict, total=False):
    """What a token says besides its key and times (`issue`'s and `mint`'s keywords)."""

    app_id: Required[str]
    install_id: Required[str]
    session_id: Required[str]  # the channel the token is bound to
    generation: Required[int]
    epoch: Required[int]
    permissions: Required[frozenset[str]]
    policy_hash: Required[str]
    ttl_s: float  # DEFAULT_TTL_S unless given


def issue(keyring: Keyring, clock: Clock, **fields: Unpack[TokenFields]) -> str:
    """A signed token for one child's channel (see `mint`)."""
    return mint(keyring, clock, **fields)[0]


def mint(keyring: Keyring, clock: Clock, **fields: Unpack[TokenFields]) -> tuple[str, Claims]:
    """A signed token and the claims it carries: the host records what it signed without
    verifying its own signature again (a verify is ~0.2 ms of a cold start)."""
    ttl = fields.get("ttl_s", DEFAULT_TTL_S)
    if not (math.isfinite(ttl) and 0 < ttl <= MAX_TTL_S):
        raise ValueError(f"token lifetime must be within (0, {MAX_TTL_S:.0f}] seconds")
    now = clock.now()
    kid = keyring.current  # once: a rotation by another process may move it meanwhile
    claims = Claims(
        app=fields["app_id"], ins=fields["install_id"], sid=fields["session_id"],
        gen=fields["generation"], epoch=fields["epoch"], perms=sorted(fields["permissions"]),
        pol=fields["policy_hash"], iat=now, exp=now + ttl,
        jti=secrets.token_hex(12), kid=kid,
    )
    head = PREFIX + _b64e(claims.model_dump_json().encode())
    _kid, sig = keyring.sign(head.encode(), kid)
    return head + "." + _b64e(sig), claims


def same_token(presented: object, issued: str) -> bool:
    """Whether `presented` is exactly `issued` (constant time): a channel hands back the token
    it was given, and nothing else passes."""
    return isinstance(presented, str) and secrets.compare_digest(presented.encode(),
                                                                 issued.encode())


def handed_back(presented: object, given: str) -> None:
    """A handshake's check: raise TokenError unless the child handed back exactly the token it
    was given. A signature check alone passes any token the key signed for the channel."""
    if not same_token(presented, given):
        raise TokenError("the child presented a token it was not given")


def verify(token: str, keyring: Keyring, clock: Clock, *, session_id: str) -> Claims:
    """Return the claims, or raise TokenError. `session_id` is the channel's own session."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
        raise TokenError("token missing or oversize")
    if not token.startswith(PREFIX):
        raise TokenError("unsupported token version or algorithm")
    body = token[len(PREFIX):]
    if body.count(".") != 1:
        raise TokenError("malformed token")
    payload_b64, sig_b64 = body.split(".")
    raw = _b64d(payload_b64)
    sig = _b64d(sig_b64)
    try:
        claims = Claims.model_validate(json.loads(raw))
    except (ValueError, ValidationError, RecursionError) as exc:
        raise TokenError("malformed token claims") from exc
    try:
        keyring.verify(claims.kid, (PREFIX + payload_b64).encode(), sig)
    except InvalidSignature as exc:
        raise TokenError("bad token signature") from exc
    if not (math.isfinite(claims.iat) and math.isfinite(claims.exp)
            and claims.exp - claims.iat <= MAX_TTL_S):
        raise TokenError("token lifetime out of bounds")
    now = clock.now()
    if claims.iat > now + CLOCK_SKEW_S:
        raise TokenError("token not yet valid")
    if claims.exp <= now:
        raise TokenError("token expired")
    if not secrets.compare_digest(claims.sid, session_id):
        raise TokenError("token was issued for another channel")
    return claims
