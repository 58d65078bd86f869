"""A host key rotated or retired on one host is known on every host sharing the store — only
through a chain of signatures back to the keys each host already holds (`host.keys.shared`)."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pghelp import stockade, until

from host.home import Home
from host.keys.keyring import Keyring
from host.keys.shared import _rotation_payload
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
    import json

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
