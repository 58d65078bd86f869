"""A host key rotated or retired on one host is known on every host sharing the store — only
through a chain of signatures back to the keys each host already holds (`host.keys.shared`)."""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from apphelp import install, write_app
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pghelp import stockade, until

from host.home import Home
from host.keys.keyring import Keyring
from host.keys.shared import (
    _rotation_payload,
    adopt_keys,
    publish_retirement,
    publish_rotation,
)
from host.migrate import migrate
from host.runtime import Host, HostConfig


@pytest.fixture
def two(tmp_path: Path, pg_url: str) -> Iterator[tuple[Home, Host]]:
    migrate(pg_url)
    first = Home(tmp_path / "a", pg_url).ensure()
    Keyring.open(first.keys_dir)
    for part in ("keys", "trust", "policies"):
        shutil.copytree(first.root / part, tmp_path / "b" / part)
    host = Host(Home(tmp_path / "b", pg_url).ensure(),
                config=HostConfig(watch=False, use_zygote=False)).start()
    yield first, host
    host.stop()


def test_a_rotation_and_a_retirement_on_one_host_reach_the_other(
        two: tuple[Home, Host]) -> None:
    first, host = two
    k2 = json.loads(stockade(first, "keys", "host-rotate", "--json").stdout)["current"]
    until(lambda: k2 in host.keyring.public_keys(), "the other host to learn the new key")
    signer = Keyring.open(first.keys_dir)  # a consent signed on the first host now verifies
    kid, sig = signer.sign(b"consent")
    host.keyring.verify(kid, b"consent", sig)
    assert (host.home.keys_dir / f"{k2}.pub").exists()  # its own CLI knows the key too
    assert k2 in Keyring.open(host.home.keys_dir).public_keys()
    # A chain: k3 is signed by k2, which the other host learnt above.
    k3 = json.loads(stockade(first, "keys", "host-rotate", "--json").stdout)["current"]
    assert stockade(first, "keys", "host-retire", k2).returncode == 0
    until(lambda: k3 in host.keyring.public_keys() and k2 in host.keyring.retired,
           "the other host to learn k3 and retire k2")
    with pytest.raises(Exception, match="retired"):
        host.keyring.verify(k2, b"x", b"\0" * 64)


def test_a_key_written_into_the_store_by_someone_else_is_never_trusted(
        two: tuple[Home, Host], tmp_path: Path) -> None:
    first, host = two
    stranger = Keyring.open(tmp_path / "stranger")
    own = Keyring.open(first.keys_dir)
    forged = [  # (kid, its public key, signer kid, signature)
        # signed by a key no host holds: never adopted
        ("aaaaaaaaaaaaaaaa", stranger.public_keys()[stranger.current], stranger.current,
         stranger.sign(_rotation_payload("aaaaaaaaaaaaaaaa",
                                         stranger.public_keys()[stranger.current]))[1]),
        # claims the hosts' own key as signer, with a signature it did not make: refused
        ("bbbbbbbbbbbbbbbb", stranger.public_keys()[stranger.current], own.current,
         b"\1" * 64),
        # not a key id at all, with terminal escapes: nothing of it reaches a record
        ("\x1b[31mpwned\x1b[0m", stranger.public_keys()[stranger.current], own.current,
         b"\1" * 64),
    ]
    with psycopg.connect(str(first.store_url), autocommit=True) as c:
        for kid, public, signer, sig in forged:
            c.execute("INSERT INTO published_keys(kid, public_key, signer, signature, at)"
                      " VALUES(%s, %s, %s, %s, 0)", (kid, public, signer, sig))
    until(lambda: any("bbbbbbbbbbbbbbbb" in str(e.body.get("detail"))
                       for e in host.ledger.audit.tail(100)
                       if e.body["kind"] == "operator.key_refused"), "the refusal record")
    def refusals() -> list[str]:
        return [str(e.body.get("detail")) for e in host.ledger.audit.tail(100)
                if e.body["kind"] == "operator.key_refused"]

    until(lambda: any("malformed key id" in d for d in refusals()), "the malformed refusal")
    assert not any("pwned" in d or "\x1b" in d for d in refusals())
    assert "aaaaaaaaaaaaaaaa" not in host.keyring.public_keys()
    assert "bbbbbbbbbbbbbbbb" not in host.keyring.public_keys()
    assert not list(host.home.keys_dir.glob("*.pub"))


def _copied_keyrings(tmp_path: Path) -> tuple[Path, Path, Keyring, Keyring]:
    """Host A's keyring, and host B's: a copy of A's (as the operator sets a second host up)."""
    a_dir, b_dir = tmp_path / "a" / "keys", tmp_path / "b" / "keys"
    ring_a = Keyring.open(a_dir)
    shutil.copytree(a_dir, b_dir)
    return a_dir, b_dir, ring_a, Keyring.open(b_dir)


def _publish_forged(url: str, a_dir: Path, signer: str, kid: str) -> Ed25519PrivateKey:
    """Whoever holds `signer`'s private half (it leaked: that is why it is retired) and can
    write the store publishes a key of their own "rotated" from it."""
    stolen = Ed25519PrivateKey.from_private_bytes((a_dir / f"{signer}.key").read_bytes())
    mine = Ed25519PrivateKey.generate()
    public = mine.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("INSERT INTO published_keys(kid, public_key, signer, signature, at)"
                  " VALUES(%s, %s, %s, %s, %s)",
                  (kid, public, signer, stolen.sign(_rotation_payload(kid, public)),
                   time.time()))
    return mine


def test_a_key_vouched_for_by_a_retired_key_is_never_adopted(pg_url: str,
                                                             tmp_path: Path) -> None:
    """A host that sees a rotation away from a leaked key, its retirement and the thief's key
    "rotated" from it in one pass adopts the rotation and the retirement, never the thief's
    key (before the fix: adopted, as keys were adopted before any retirement applied)."""
    migrate(pg_url)
    a_dir, b_dir, ring_a, ring_b = _copied_keyrings(tmp_path)
    k1 = ring_a.current
    ring_b.rotate()  # B moves off the shared first key too (it must, to accept its retirement)
    publish_rotation(pg_url, ring_b, k1)
    k2 = ring_a.rotate()
    publish_rotation(pg_url, ring_a, k1)
    ring_a.retire(k1)
    publish_retirement(pg_url, ring_a, k1)
    thief = _publish_forged(pg_url, a_dir, k1, "eeeeeeeeeeeeeeee")

    refused: list[str] = []
    changed = adopt_keys(pg_url, ring_b, refused.append)
    assert f"+{k2}" in changed and f"-{k1}" in changed
    assert "+eeeeeeeeeeeeeeee" not in changed
    assert any("eeeeeeeeeeeeeeee" in why and "retired" in why for why in refused)
    message = b"a consent, a policy bundle, a retirement of k2"
    for ring in (ring_b, Keyring.open(b_dir)):  # in memory, and after a restart
        with pytest.raises(InvalidSignature):
            ring.verify("eeeeeeeeeeeeeeee", message, thief.sign(message))
    assert not (b_dir / "eeeeeeeeeeeeeeee.pub").exists()
    assert adopt_keys(pg_url, ring_b, refused.append) == []  # and not at a later pass either


def test_a_host_catching_up_keeps_the_line_that_retired_the_key(pg_url: str,
                                                               tmp_path: Path) -> None:
    """k1 -> k2 -> k3, then k1 retired by k3: a host that was away sees it all at once. It
    adopts k2 and k3 (the line from k1 to the key that retired it) and not the thief's key."""
    migrate(pg_url)
    a_dir, _b_dir, ring_a, ring_b = _copied_keyrings(tmp_path)
    k1 = ring_a.current
    ring_b.rotate()
    publish_rotation(pg_url, ring_b, k1)
    k2 = ring_a.rotate()
    publish_rotation(pg_url, ring_a, k1)
    k3 = ring_a.rotate()
    publish_rotation(pg_url, ring_a, k2)
    _publish_forged(pg_url, a_dir, k1, "eeeeeeeeeeeeeeee")
    ring_a.retire(k1)
    publish_retirement(pg_url, ring_a, k1)

    changed = adopt_keys(pg_url, ring_b, lambda _why: None)
    assert {f"+{k2}", f"+{k3}", f"-{k1}"} <= set(changed)
    assert "eeeeeeeeeeeeeeee" not in ring_b.public_keys()
    kid, sig = ring_a.sign(b"consent")
    ring_b.verify(kid, b"consent", sig)


APP_SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return None
'''


@pytest.fixture
def installed(tmp_path: Path, pg_url: str) -> tuple[Home, Home, str]:
    """Host A's home with an app installed, and host B's home (a copy of A's keys, trust and
    policies, as the operator sets a second host up); no host serves yet."""
    migrate(pg_url)
    first = Home(tmp_path / "a", pg_url).ensure()
    rec = install(first, write_app(tmp_path / "apps", "keyed", ["livechat.read"],
                                   ["livechat.room_started"], APP_SRC))
    for part in ("keys", "trust", "policies"):
        shutil.copytree(first.root / part, tmp_path / "b" / part)
    return first, Home(tmp_path / "b", pg_url).ensure(), rec.install_id


def _info(home: Home) -> dict[str, object]:
    out = stockade(home, "app", "info", "keyed", "--json")
    assert out.returncode == 0, out.stderr
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


def _reconsent(home: Home) -> None:
    done = stockade(home, "app", "consent", "keyed", "--grant", "livechat.read", "--yes")
    assert done.returncode == 0, done.stderr


def test_a_consent_signed_right_after_a_rotation_verifies_on_another_host(
        installed: tuple[Home, Home, str]) -> None:
    """Host A rotates and re-confirms the app (as `host-retire` asks); host B reads the app
    before its upkeep adopted the new key. B adopts the published key first and the consent
    verifies (before the fix: "tampering", and the app disabled in the shared store)."""
    first, second, _ = installed
    assert stockade(first, "keys", "host-rotate").returncode == 0
    _reconsent(first)
    doc = _info(second)
    assert doc["consent_ok"] is True and doc["enabled"] is True
    assert _info(first)["enabled"] is True


def test_a_consent_by_a_key_not_yet_published_waits_and_disables_nothing(
        installed: tuple[Home, Home, str]) -> None:
    """The consent's key is not (yet) in the store: host B cannot verify it. That is "not yet
    verifiable": the app does not run on B meanwhile, B records `consent_unverified` once,
    and nothing is disabled for anyone; once the key is published, B starts the app."""
    first, second, install_id = installed
    host = Host(second, config=HostConfig(use_zygote=False)).start()
    try:
        until(lambda: install_id in host.runners, "the app to start on host B")
        ring = Keyring.open(first.keys_dir)
        old = ring.current
        ring.rotate()  # rotated on A; its publication has not reached the store yet
        _reconsent(first)
        until(lambda: _records(host, "consent_unverified"), "B to record the wait")
        assert install_id not in host.runners  # its calls are refused meanwhile
        assert not _records(host, "consent_invalid")
        doc = _info(second)  # B's CLI neither calls it tampering nor disables it
        assert doc["enabled"] is True and doc["consent_ok"] is False
        assert "does not know" in str(doc["consent_problem"])
        assert _info(first)["enabled"] is True and _info(first)["consent_ok"] is True
        host.sync_installs()  # a second look records nothing new
        assert len(_records(host, "consent_unverified")) == 1

        publish_rotation(str(first.store_url), ring, old)
        until(lambda: install_id in host.runners, "B to start the app once the key arrives")
        assert not _records(host, "consent_invalid")
    finally:
        host.stop()


def _records(host: Host, code: str) -> list[str]:
    return [str(e.body.get("detail")) for e in host.ledger.audit.tail(300)
            if e.body.get("code") == code]
