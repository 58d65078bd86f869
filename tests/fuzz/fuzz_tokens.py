"""Fuzz target: the capability-token decoder `host.keys.tokens.verify`.

Documented outcome for anything but a genuine token: `TokenError`, nothing else. Invariant: when
verify succeeds, the claims are exactly the genuine token's (no input other than a re-encoding
of the real token can verify). Half the inputs are mutations of a real token, so the fuzzer
spends its time past the prefix and base64 checks.

Run for an hour: `.venv/bin/python tests/fuzz/fuzz_tokens.py -max_total_time=3600`.
"""
from __future__ import annotations

import sys

from host.clock import ManualClock
from host.keys import tokens
from host.keys.keyring import Keyring
from host.keys.tokens import TokenError

RING = Keyring.ephemeral()
CLOCK = ManualClock()
SID = "f" * 32
GENUINE = tokens.issue(RING, CLOCK, app_id="fuzz-app", install_id="ins", session_id=SID,
                       generation=1, epoch=1, permissions=frozenset({"users.read"}),
                       policy_hash="pol", ttl_s=3600)
GENUINE_CLAIMS = tokens.verify(GENUINE, RING, CLOCK, session_id=SID)


def _candidate(data: bytes) -> str:
    if not data:
        return ""
    mode, rest = data[0], data[1:]
    if mode % 3 == 0:
        return rest.decode("utf-8", "replace")
    if mode % 3 == 1:  # overwrite a stretch of the genuine token
        pos = int.from_bytes(rest[:2] or b"\0", "big") % (len(GENUINE) + 1)
        patch = rest[2:].decode("latin-1")
        return GENUINE[:pos] + patch + GENUINE[pos + len(patch):]
    # splice: genuine prefix + fuzz + genuine suffix
    cut = int.from_bytes(rest[:2] or b"\0", "big") % (len(GENUINE) + 1)
    return GENUINE[:cut] + rest[2:].decode("latin-1") + GENUINE[cut:]


def fuzz_one(data: bytes) -> None:
    token = _candidate(data)
    try:
        claims = tokens.verify(token, RING, CLOCK, session_id=SID)
    except TokenError:
        return
    assert claims == GENUINE_CLAIMS, f"a non-genuine token verified: {token!r}"


if __name__ == "__main__":
    import atheris  # type: ignore[import-not-found]

    atheris.instrument_all()
    atheris.Setup(sys.argv, fuzz_one)
    atheris.Fuzz()
