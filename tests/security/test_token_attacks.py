"""Token attacks against `host.keys.tokens.verify` and against a real child handshake.

A capability token is `stk1.ed25519.<b64url claims>.<b64url sig>`. Each test below forges or
edits one and checks verify refuses it with `TokenError` (never another exception type, never a
silent pass). A control test checks that an untouched token verifies, so the refusals are not
vacuous.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from host.clock import ManualClock
from host.keys import tokens
from host.keys.keyring import Keyring
from host.keys.tokens import PREFIX, TokenError
from host.supervise.child import ChildLimits
from host.supervise.spawner import Spawner

SID = "a" * 32
OTHER_SID = "b" * 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ring(tmp_path: Any) -> Keyring:
    return Keyring.open(tmp_path / "keys")


def _issue(ring: Keyring, clock: ManualClock, **over: Any) -> str:
    kw: dict[str, Any] = dict(app_id="agent-sync", install_id="ins-1", session_id=SID,
                              generation=3, epoch=1, permissions=frozenset({"users.read"}),
                              policy_hash="pol", ttl_s=600.0)
    kw.update(over)
    return tokens.issue(ring, clock, **kw)


def _split(token: str) -> tuple[dict[str, Any], str]:
    body = token[len(PREFIX):]
    payload, sig = body.split(".")
    return json.loads(_unb64(payload)), sig


def _rebuild(claims: dict[str, Any], sig: str) -> str:
    return PREFIX + _b64(json.dumps(claims).encode()) + "." + sig


def _resign(claims: dict[str, Any], key: Ed25519PrivateKey, prefix: str = PREFIX) -> str:
    head = prefix + _b64(json.dumps(claims).encode())
    return head + "." + _b64(key.sign(head.encode()))


def test_control_valid_token_verifies(ring: Keyring, clock: ManualClock) -> None:
    claims = tokens.verify(_issue(ring, clock), ring, clock, session_id=SID)
    assert claims.app == "agent-sync" and claims.perms == ["users.read"] and claims.sid == SID


def test_forged_signature(ring: Keyring, clock: ManualClock) -> None:
    claims, _sig = _split(_issue(ring, clock))
    with pytest.raises(TokenError):
        tokens.verify(_rebuild(claims, _b64(b"\0" * 64)), ring, clock, session_id=SID)


def test_flipped_signature_bit(ring: Keyring, clock: ManualClock) -> None:
    tok = _issue(ring, clock)
    head, sig = tok.rsplit(".", 1)
    raw = bytearray(_unb64(sig))
    raw[10] ^= 1
    with pytest.raises(TokenError):
        tokens.verify(head + "." + _b64(bytes(raw)), ring, clock, session_id=SID)


def test_another_key_under_the_same_key_id(ring: Keyring, clock: ManualClock) -> None:
    """An attacker's own key, claiming the host's current kid."""
    claims, _ = _split(_issue(ring, clock))
    forged = _resign(claims, Ed25519PrivateKey.generate())
    with pytest.raises(TokenError, match="signature"):
        tokens.verify(forged, ring, clock, session_id=SID)


@pytest.mark.parametrize(("field", "value"), [
    ("app", "other-app"),
    ("ins", "ins-2"),
    ("perms", ["users.read", "roles.assign"]),
    ("perms", ["server.rest"]),
    ("exp", 9e18),
    ("iat", 0.0),
    ("gen", 4),
    ("epoch", 2),
    ("sid", OTHER_SID),
    ("pol", "other"),
])
def test_edited_claims(ring: Keyring, clock: ManualClock, field: str, value: Any) -> None:
    claims, sig = _split(_issue(ring, clock))
    claims[field] = value
    with pytest.raises(TokenError):
        tokens.verify(_rebuild(claims, sig), ring, clock, session_id=claims["sid"])


def test_reencoded_same_claims_other_bytes(ring: Keyring, clock: ManualClock) -> None:
    """Same claims, different JSON bytes (whitespace): the signature covers bytes, not meaning."""
    tok = _issue(ring, clock)
    body = tok[len(PREFIX):]
    payload, sig = body.split(".")
    spaced = json.dumps(json.loads(_unb64(payload)), indent=1).encode()
    with pytest.raises(TokenError):
        tokens.verify(PREFIX + _b64(spaced) + "." + sig, ring, clock, session_id=SID)


def test_expired(ring: Keyring, clock: ManualClock) -> None:
    tok = _issue(ring, clock, ttl_s=60)
    clock.advance(60)
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(tok, ring, clock, session_id=SID)
    clock.set(clock.now() - 1.5)  # control: just before expiry it still verifies
    tokens.verify(tok, ring, clock, session_id=SID)


def test_not_yet_valid(ring: Keyring, clock: ManualClock) -> None:
    tok = _issue(ring, clock)
    clock.set(clock.now() - tokens.CLOCK_SKEW_S - 1)
    with pytest.raises(TokenError, match="not yet valid"):
        tokens.verify(tok, ring, clock, session_id=SID)


def test_replay_on_another_channel(ring: Keyring, clock: ManualClock) -> None:
    tok = _issue(ring, clock)
    with pytest.raises(TokenError, match="another channel"):
        tokens.verify(tok, ring, clock, session_id=OTHER_SID)


@pytest.mark.parametrize("mutate", [
    lambda t: "stk0" + t[4:],
    lambda t: "stk2" + t[4:],
    lambda t: t.replace("stk1.ed25519.", "stk1.none.", 1),
    lambda t: t.replace("stk1.ed25519.", "stk1.hs256.", 1),
    lambda t: t.replace("stk1.ed25519.", "stk1.ED25519.", 1),
    lambda t: t.replace("stk1.ed25519.", "", 1),
    lambda t: t.replace("stk1.ed25519.", "ed25519.", 1),
    lambda t: " " + t,
    lambda t: t.upper(),
], ids=["stk0", "stk2", "alg-none", "alg-hs256", "alg-case", "no-prefix", "no-version",
        "leading-space", "upper"])
def test_version_downgrade(ring: Keyring, clock: ManualClock, mutate: Callable[[str], str]) -> None:
    with pytest.raises(TokenError):
        tokens.verify(mutate(_issue(ring, clock)), ring, clock, session_id=SID)


def test_alg_none_unsigned(ring: Keyring, clock: ManualClock) -> None:
    claims, _ = _split(_issue(ring, clock))
    for tok in (PREFIX + _b64(json.dumps(claims).encode()) + ".",
                PREFIX + _b64(json.dumps(claims).encode()),
                "stk1.none." + _b64(json.dumps(claims).encode()) + "."):
        with pytest.raises(TokenError):
            tokens.verify(tok, ring, clock, session_id=SID)


def test_unknown_key_id(ring: Keyring, clock: ManualClock) -> None:
    claims, _ = _split(_issue(ring, clock))
    for kid in ("0" * 16, "../../etc/passwd", "", "A" * 16, ring.current + "0"):
        claims["kid"] = kid
        with pytest.raises(TokenError):
            tokens.verify(_resign(claims, Ed25519PrivateKey.generate()), ring, clock,
                          session_id=SID)


def test_retired_key_id(ring: Keyring, clock: ManualClock) -> None:
    old = _issue(ring, clock)
    old_kid = ring.current
    ring.rotate()
    tokens.verify(old, ring, clock, session_id=SID)  # control: rotation keeps old ones valid
    ring.retire(old_kid)
    with pytest.raises(TokenError):
        tokens.verify(old, ring, clock, session_id=SID)
    tokens.verify(_issue(ring, clock), ring, clock, session_id=SID)  # the new key still works


def test_retirement_survives_reopen(ring: Keyring, clock: ManualClock) -> None:
    old = _issue(ring, clock)
    old_kid = ring.current
    ring.rotate()
    ring.retire(old_kid)
    reopened = Keyring.open(ring.keys_dir)
    with pytest.raises(TokenError):
        tokens.verify(old, reopened, clock, session_id=SID)


def test_token_from_another_host_keyring(tmp_path: Any, clock: ManualClock) -> None:
    a = Keyring.open(tmp_path / "a")
    b = Keyring.open(tmp_path / "b")
    with pytest.raises(TokenError):
        tokens.verify(_issue(a, clock), b, clock, session_id=SID)


def _claims(ring: Keyring, clock: ManualClock) -> dict[str, Any]:
    return _split(_issue(ring, clock))[0]


@pytest.mark.parametrize("edit", [
    lambda c: c.update(extra="x"),
    lambda c: c.update(admin=True),
    lambda c: c.pop("exp"),
    lambda c: c.pop("sid"),
    lambda c: c.update(exp="9999999999"),
    lambda c: c.update(gen="3"),
    lambda c: c.update(gen=True),
    lambda c: c.update(perms="users.read"),
    lambda c: c.update(perms=[1]),
    lambda c: c.update(app=None),
    lambda c: c.update(app="x" * 65),
    lambda c: c.update(perms=["p"] * 65),
    lambda c: c.update(kid=["k"]),
], ids=["extra", "admin", "no-exp", "no-sid", "exp-str", "gen-str", "gen-bool", "perms-str",
        "perms-int", "app-null", "app-long", "perms-many", "kid-list"])
def test_malformed_claims_even_when_validly_signed(
        ring: Keyring, clock: ManualClock, edit: Callable[[dict[str, Any]], Any]) -> None:
    """Even a correctly signed token (e.g. a future/buggy issuer) with bad claims is refused."""
    claims = _claims(ring, clock)
    edit(claims)
    head = PREFIX + _b64(json.dumps(claims).encode())
    _kid, sig = ring.sign(head.encode())
    with pytest.raises(TokenError):
        tokens.verify(head + "." + _b64(sig), ring, clock, session_id=SID)


@pytest.mark.parametrize("payload", [b"[1,2]", b'"str"', b"null", b"12", b"{", b"\xff\xfe",
                                     b"{}", b'{"a":' * 5000, b"1" * 5000])
def test_claims_not_an_object(ring: Keyring, clock: ManualClock, payload: bytes) -> None:
    head = PREFIX + _b64(payload)
    _kid, sig = ring.sign(head.encode())
    with pytest.raises(TokenError):
        tokens.verify(head + "." + _b64(sig), ring, clock, session_id=SID)


@pytest.mark.parametrize("token", [
    "", PREFIX, PREFIX + ".", PREFIX + "..", PREFIX + "a.b.c", PREFIX + "!!!.???",
    PREFIX + "a", PREFIX + "abcde.fghij", PREFIX + "é.é", PREFIX + "٣٣٣٣.٣٣٣٣",
    PREFIX + "YQ==.YQ==", PREFIX + "a\n.b", PREFIX + "\x00.\x00", PREFIX + "a" * 5000 + ".b",
])
def test_malformed_tokens(ring: Keyring, clock: ManualClock, token: str) -> None:
    with pytest.raises(TokenError):
        tokens.verify(token, ring, clock, session_id=SID)


def test_extra_dots(ring: Keyring, clock: ManualClock) -> None:
    tok = _issue(ring, clock)
    for bad in (tok + ".", tok + ".x", tok.replace(".", "..", 3)):
        with pytest.raises(TokenError):
            tokens.verify(bad, ring, clock, session_id=SID)


def test_bad_signature_lengths(ring: Keyring, clock: ManualClock) -> None:
    tok = _issue(ring, clock)
    head = tok.rsplit(".", 1)[0]
    for sig in (b"", b"x", b"x" * 63, b"x" * 65, b"x" * 128):
        with pytest.raises(TokenError):
            tokens.verify(head + "." + _b64(sig), ring, clock, session_id=SID)


def test_oversize(ring: Keyring, clock: ManualClock) -> None:
    tok = _issue(ring, clock)
    with pytest.raises(TokenError, match="oversize"):
        tokens.verify(tok + "A" * tokens.MAX_TOKEN_BYTES, ring, clock, session_id=SID)
    with pytest.raises(TokenError):
        tokens.verify("A" * (10 << 20), ring, clock, session_id=SID)


@pytest.mark.parametrize("value", [None, 1, b"stk1.ed25519.x.y", ["stk1"], {"t": 1}])
def test_not_a_string(ring: Keyring, clock: ManualClock, value: Any) -> None:
    with pytest.raises(TokenError):
        tokens.verify(value, ring, clock, session_id=SID)


# ---- through a real child handshake --------------------------------------------------------


def test_handshake_token_of_child_a_fails_on_child_b(tmp_path: Any) -> None:
    """The host gives child B a token issued for child A's channel: B's handshake must fail.

    (Stands for a hostile child that learned another channel's token: the binding is checked on
    the host side, against the channel's own session id, whatever the child echoes.)
    """
    from host.clock import SystemClock

    ring = Keyring.open(tmp_path / "keys")
    clock = SystemClock()
    spawner = Spawner(use_zygote=True)
    try:
        a = spawner.start(ChildLimits())
        b = spawner.start(ChildLimits())

        def tok_for(sid: str) -> str:
            return tokens.issue(ring, clock, app_id="a", install_id="i", session_id=sid,
                                generation=1, epoch=1, permissions=frozenset(), policy_hash="p")

        def verifier(sid: str) -> Callable[[str], None]:
            def verify(t: str) -> None:
                tokens.verify(t, ring, clock, session_id=sid)
            return verify

        token_a = tok_for(a.session_id)
        a.handshake(token_a, verifier(a.session_id), degraded=False)  # control: A's own works
        with pytest.raises(TokenError, match="another channel"):
            b.handshake(token_a, verifier(b.session_id), degraded=False)
        # a forged token fails a handshake too
        c = spawner.start(ChildLimits())
        forged = _resign(_split(tok_for(c.session_id))[0], Ed25519PrivateKey.generate())
        with pytest.raises(TokenError):
            c.handshake(forged, verifier(c.session_id), degraded=False)
        for ch in (a, b, c):
            ch.shutdown(0.5)
    finally:
        spawner.close()


def test_a_start_accepts_only_the_exact_token_it_gave_the_child(tmp_path: Any,
                                                                  monkeypatch: Any) -> None:
    """The host's start checks the token a child hands back against the one it gave it, not
    just its signature: a well-signed token for the same channel, minted elsewhere (a replayed
    or injected one), is refused. A signature check alone accepts it (the control)."""
    from apphelp import install, write_app

    from host.clock import SystemClock
    from host.home import Home
    from host.runtime import Host
    from host.supervise.child import Child

    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(tmp_path / "apps", "handback", ["livechat.read"],
                                  ["livechat.room_started"],
                                  "from stockade import App\n\nclass TestApp(App):\n"
                                  "    def on_livechat_room_started(self, ctx, event):\n"
                                  "        return 'ran'\n"))
    real = Child.handshake
    with Host(home) as host:
        accepted_elsewhere: list[bool] = []

        def presents_another(self: Child, token: str, verify: Callable[[str], None],
                             **kw: Any) -> Any:
            other = tokens.issue(host.keyring, SystemClock(), app_id=rec.app_id,
                                 install_id=rec.install_id, session_id=self.session_id,
                                 generation=rec.generation, epoch=0,
                                 permissions=rec.grants, policy_hash="p")
            tokens.verify(other, host.keyring, SystemClock(), session_id=self.session_id)
            accepted_elsewhere.append(True)  # the control: its signature and channel are good
            return real(self, token, lambda _presented: verify(other), **kw)

        monkeypatch.setattr(Child, "handshake", presents_another)
        runner = next(iter(host.runners.values()))
        if runner.child is not None:  # started at the host's start (its install hook)
            runner.child.kill("test: start again", code="stopped")
        with pytest.raises(TokenError, match="not given"):
            runner.submit("livechat.room_started", {}, 5.0).result(20)
        assert accepted_elsewhere
        monkeypatch.setattr(Child, "handshake", real)
        runner.deaths.next_start = 0.0  # past the restart backoff: the honest child starts
        assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ran"


def test_same_token_is_exact(ring: Keyring, clock: ManualClock) -> None:
    tok = _issue(ring, clock)
    assert tokens.same_token(tok, tok)
    assert not tokens.same_token(tok[:-1] + ("A" if tok[-1] != "A" else "B"), tok)
    assert not tokens.same_token(_issue(ring, clock), tok)  # same fields, another jti
    assert not tokens.same_token(None, tok) and not tokens.same_token(tok.encode(), tok)
