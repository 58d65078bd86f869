"""A token has exactly one spelling, and a bounded, finite lifetime.

- base64url with unused low bits set in the last character decodes to the same bytes: a token
  edited that way verified as the genuine one (many strings, one token), where the format says
  a token is its exact string (`same_token`);
- a lifetime that is not a finite number of seconds up to `MAX_TTL_S` (NaN, infinity, a year)
  was minted and verified: a NaN `exp` never compares as expired, so such a token never
  expired, at `verify` or at the gate.
"""
from __future__ import annotations

import base64
from typing import Any

import pytest

from host.clock import ManualClock
from host.keys import tokens
from host.keys.keyring import Keyring
from host.keys.tokens import PREFIX, TokenError

SID = "c" * 32
# The bound (`tokens.MAX_TTL_S`; read so, the tests also run against code without it).
MAX_TTL_S: float = getattr(tokens, "MAX_TTL_S", 7 * 24 * 3600.0)
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ring(tmp_path: Any) -> Keyring:
    return Keyring.open(tmp_path / "keys")


def _issue(ring: Keyring, clock: ManualClock, ttl_s: float = 600.0) -> str:
    return tokens.issue(ring, clock, app_id="a", install_id="i", session_id=SID, generation=1,
                        epoch=1, permissions=frozenset({"users.read"}), policy_hash="p",
                        ttl_s=ttl_s)


def _respell_last(part: str) -> str:
    """The same bytes spelled with the last character's unused low bits set."""
    raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    unused = {2: 4, 3: 2}[len(part) % 4]  # characters past a whole group -> free bits
    alt = part[:-1] + _B64[_B64.index(part[-1]) | ((1 << unused) - 1)]
    assert alt != part and base64.urlsafe_b64decode(alt + "=" * (-len(alt) % 4)) == raw
    return alt


def test_control_the_genuine_spelling_verifies(ring: Keyring, clock: ManualClock) -> None:
    tokens.verify(_issue(ring, clock), ring, clock, session_id=SID)


def test_a_signature_spelled_otherwise_is_refused(ring: Keyring, clock: ManualClock) -> None:
    token = _issue(ring, clock)
    head, sig = token.rsplit(".", 1)
    with pytest.raises(TokenError):
        tokens.verify(head + "." + _respell_last(sig), ring, clock, session_id=SID)


def test_a_non_ascii_digit_is_not_base64(ring: Keyring, clock: ManualClock) -> None:
    token = _issue(ring, clock)
    with pytest.raises(TokenError):
        tokens.verify(token[:-1] + "\u0663", ring, clock, session_id=SID)


@pytest.mark.parametrize("ttl", [float("nan"), float("inf"), -1.0, 0.0, MAX_TTL_S + 1,
                                 365 * 24 * 3600.0])
def test_a_lifetime_out_of_bounds_is_never_minted(ring: Keyring, clock: ManualClock,
                                                   ttl: float) -> None:
    with pytest.raises(ValueError):
        _issue(ring, clock, ttl_s=ttl)


def test_a_signed_token_living_past_the_bound_is_refused(ring: Keyring,
                                                         clock: ManualClock) -> None:
    """A token signed by a live key, with a lifetime no host mints (an older release, or a key
    that leaked and was not retired yet), is refused: its expiry proves nothing."""
    claims = tokens.Claims(app="a", ins="i", sid=SID, gen=1, epoch=1, perms=[], pol="p",
                           iat=clock.now(), exp=clock.now() + MAX_TTL_S + 1, jti="j",
                           kid=ring.current)
    head = PREFIX + base64.urlsafe_b64encode(
        claims.model_dump_json().encode()).rstrip(b"=").decode()
    sig = base64.urlsafe_b64encode(ring.sign(head.encode())[1]).rstrip(b"=").decode()
    with pytest.raises(TokenError):
        tokens.verify(head + "." + sig, ring, clock, session_id=SID)
