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
    _retirement_payload,
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


# --- a published retirement stays published (the store's key tables are append-only) ---

_ERASE = (  # what whoever can write the store tries, to take k1's retirement back
    # the layout before the fix: the retirement was two columns of the key's row
    "UPDATE published_keys SET retire_signer = NULL, retire_signature = NULL WHERE kid = %s",
    "DELETE FROM published_keys WHERE kid = %s",
    # the retirement's own row
    "UPDATE published_retirements SET signature = '\\x00' WHERE kid = %s",
    "DELETE FROM published_retirements WHERE kid = %s",
    "TRUNCATE published_retirements",
)


def _erase(url: str, k1: str, *, owner: bool = False) -> list[str]:
    """Try every statement of `_ERASE` (each on its own; `owner`: with the tables' triggers
    disabled first, as their owner may); what each met, in order."""
    met: list[str] = []
    with psycopg.connect(url, autocommit=True) as c:
        if owner:
            for table in ("published_keys", "published_retirements"):
                if c.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,):
                    c.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER".encode())
        for sql in _ERASE:
            try:
                c.execute(sql, (k1,) * sql.count("%s"))
                met.append(f"accepted: {sql}")
            except psycopg.Error as exc:
                met.append(str(exc))
    return met


def _retired_on_a(url: str, tmp_path: Path) -> tuple[Path, Keyring, Keyring, str, str]:
    """k1 -> k2 on host A (k1 leaked), then k1 retired; host B moved off k1 too (it must, to
    accept the retirement) and has applied nothing yet. (A's keys dir, A, B, k1, k2.)"""
    a_dir, _b_dir, ring_a, ring_b = _copied_keyrings(tmp_path)
    k1 = ring_a.current
    ring_b.rotate()
    publish_rotation(url, ring_b, k1)
    k2 = ring_a.rotate()
    publish_rotation(url, ring_a, k1)
    ring_a.retire(k1)
    publish_retirement(url, ring_a, k1)
    return a_dir, ring_a, ring_b, k1, k2


def test_a_published_retirement_cannot_be_taken_back(pg_url: str, tmp_path: Path) -> None:
    """The thief holding k1 and the store's URL publishes a key "rotated" from k1 and tries to
    take k1's retirement back (NULL it, delete it, truncate). Each is refused by the store, so
    a host that had not applied the retirement yet (down, or between polls) still applies it
    and never adopts the thief's key (before the fix: the UPDATE went through, the host kept
    k1 live and adopted the thief's key)."""
    migrate(pg_url)
    a_dir, _ring_a, ring_b, k1, k2 = _retired_on_a(pg_url, tmp_path)
    thief = _publish_forged(pg_url, a_dir, k1, "eeeeeeeeeeeeeeee")
    met = _erase(pg_url, k1)

    refused: list[str] = []
    changed = adopt_keys(pg_url, ring_b, refused.append)
    assert "+eeeeeeeeeeeeeeee" not in changed, (changed, met)
    assert f"+{k2}" in changed and f"-{k1}" in changed
    message = b"a consent granting users.create and roles.assign"
    stolen = Ed25519PrivateKey.from_private_bytes((a_dir / f"{k1}.key").read_bytes())
    for ring in (ring_b, Keyring.open(ring_b.keys_dir)):  # in memory, and after a restart
        for kid, key in (("eeeeeeeeeeeeeeee", thief), (k1, stolen)):
            with pytest.raises(InvalidSignature):
                ring.verify(kid, message, key.sign(message))
    assert not [m for m in met if "published_retirements" in m and "append-only" not in m]
    with psycopg.connect(pg_url) as c:
        assert c.execute("SELECT kid FROM published_retirements").fetchall() == [(k1,)]


def test_the_published_key_tables_refuse_update_delete_and_truncate(
        pg_url: str, tmp_path: Path) -> None:
    """Host code cannot rewrite or drop a published key or retirement (engine triggers, as on
    `published_policy`; the store's owner can drop them: the next test is what holds then)."""
    migrate(pg_url)
    _a_dir, _ring_a, _ring_b, k1, k2 = _retired_on_a(pg_url, tmp_path)
    with psycopg.connect(pg_url, autocommit=True) as c:
        for sql in ("UPDATE published_keys SET signer = %s WHERE signer = %s",
                    "DELETE FROM published_keys WHERE kid = %s OR signer = %s",
                    "UPDATE published_retirements SET signer = %s WHERE kid = %s",
                    "DELETE FROM published_retirements WHERE kid = %s OR kid = %s"):
            with pytest.raises(psycopg.Error, match="append-only"):
                c.execute(sql, (k2, k1))
        for table in ("published_keys", "published_retirements"):
            with pytest.raises(psycopg.Error, match="append-only"):
                c.execute(f"TRUNCATE {table}".encode())
        assert c.execute("SELECT count(*) FROM published_keys").fetchone() == (2,)
        assert c.execute("SELECT kid, signer FROM published_retirements").fetchall() == [
            (k1, k2)]


def test_a_host_that_applied_a_retirement_keeps_it_whatever_the_store_says(
        pg_url: str, tmp_path: Path) -> None:
    """What the triggers cannot stop: the store's owner drops them and erases k1's retirement.
    A host that applied it keeps k1 retired in its own keyring (on its disk, also after a
    restart) and refuses the thief's key; only a host that never saw the retirement can be
    fooled, which is why the retirement is also made on each host (`keys host-retire`)."""
    migrate(pg_url)
    a_dir, _ring_a, ring_b, k1, _k2 = _retired_on_a(pg_url, tmp_path)
    assert f"-{k1}" in adopt_keys(pg_url, ring_b)
    _publish_forged(pg_url, a_dir, k1, "eeeeeeeeeeeeeeee")
    _erase(pg_url, k1, owner=True)
    for ring in (ring_b, Keyring.open(ring_b.keys_dir)):
        refused: list[str] = []
        assert adopt_keys(pg_url, ring, refused.append) == []
        assert k1 in ring.retired and "eeeeeeeeeeeeeeee" not in ring.public_keys()
        assert any("eeeeeeeeeeeeeeee" in why and "retired" in why for why in refused)


def test_a_store_holding_retirements_the_old_way_keeps_them(pg_url: str,
                                                            tmp_path: Path) -> None:
    """A store migrated from `published_keys` version 1 (a retirement was an UPDATE of the
    key's row) keeps its retirements: `store migrate` copies them into their own append-only
    rows, and the old columns can no longer be cleared (before the fix: they could)."""
    a_dir, _b_dir, ring_a, ring_b = _copied_keyrings(tmp_path)
    k1 = ring_a.current
    ring_b.rotate()
    k2 = ring_a.rotate()
    pub = ring_a.public_keys()
    _, rotation = ring_a.sign(_rotation_payload(k2, pub[k2]), k1)
    ring_a.retire(k1)
    _, retirement = ring_a.sign(_retirement_payload(k1))
    with psycopg.connect(pg_url, autocommit=True) as c:  # what version 1 wrote
        c.execute("CREATE TABLE schema_meta(component TEXT PRIMARY KEY, version BIGINT NOT NULL)")
        c.execute("INSERT INTO schema_meta VALUES('published_keys', 1)")
        c.execute("CREATE TABLE published_keys(kid TEXT PRIMARY KEY, public_key BYTEA NOT NULL,"
                  " signer TEXT NOT NULL, signature BYTEA NOT NULL, retire_signer TEXT,"
                  " retire_signature BYTEA, at DOUBLE PRECISION NOT NULL)")
        c.execute("INSERT INTO published_keys VALUES(%s, %s, %s, %s, NULL, NULL, 1)",
                  (k2, pub[k2], k1, rotation))
        c.execute("INSERT INTO published_keys VALUES(%s, %s, %s, %s, %s, %s, 2)",
                  (k1, pub[k1], k2, retirement, k2, retirement))
    states = {s.name: s for s in migrate(pg_url)}
    assert states["published_keys"].current
    _publish_forged(pg_url, a_dir, k1, "eeeeeeeeeeeeeeee")
    with psycopg.connect(pg_url, autocommit=True) as c, pytest.raises(
            psycopg.Error, match="append-only"):
        c.execute("UPDATE published_keys SET retire_signer = NULL, retire_signature = NULL"
                  " WHERE kid = %s", (k1,))
    changed = adopt_keys(pg_url, ring_b, lambda _why: None)
    assert f"+{k2}" in changed and f"-{k1}" in changed
    assert "eeeeeeeeeeeeeeee" not in ring_b.public_keys()


def test_a_retirement_whose_place_a_forgery_took_is_reported(pg_url: str,
                                                            tmp_path: Path) -> None:
    """Whoever can write the store puts a retirement of k1 that verifies nowhere in its place
    first. The operator's retirement cannot take the place (append-only): publishing it says
    so instead of passing for done, the retirement stands on the operator's host, and every
    other host records the forged one as refused."""
    from host.keys.shared import RetirementNotPublished

    migrate(pg_url)
    _a_dir, _b_dir, ring_a, ring_b = _copied_keyrings(tmp_path)
    k1 = ring_a.current
    ring_b.rotate()
    publish_rotation(pg_url, ring_b, k1)
    k2 = ring_a.rotate()
    publish_rotation(pg_url, ring_a, k1)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("INSERT INTO published_retirements(kid, signer, signature, at)"
                  " VALUES(%s, %s, %s, 0)", (k1, k2, b"\1" * 64))
    ring_a.retire(k1)
    with pytest.raises(RetirementNotPublished, match=f"host-retire {k1}"):
        publish_retirement(pg_url, ring_a, k1)
    assert k1 in Keyring.open(ring_a.keys_dir).retired
    refused: list[str] = []
    adopt_keys(pg_url, ring_b, refused.append)
    assert any(f"retirement of {k1} refused" in why for why in refused), refused


def test_a_sqlite_home_has_the_same_append_only_key_tables(tmp_path: Path) -> None:
    """A single host never publishes keys, but `store migrate` on its SQLite home makes the
    same tables with the same guard (SQLite has no TRUNCATE; its DELETE is refused)."""
    import sqlite3

    db = tmp_path / "host.db"
    states = {s.name: s for s in migrate(db)}
    assert states["published_keys"].have == states["published_keys"].need == 2
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO published_keys(kid, public_key, signer, signature, at)"
                  " VALUES('aaaaaaaaaaaaaaaa', x'00', 'bbbbbbbbbbbbbbbb', x'00', 0)")
        c.execute("INSERT INTO published_retirements(kid, signer, signature, at)"
                  " VALUES('bbbbbbbbbbbbbbbb', 'aaaaaaaaaaaaaaaa', x'00', 0)")
        for sql in ("UPDATE published_keys SET signer = 'cccccccccccccccc'",
                    "DELETE FROM published_keys",
                    "UPDATE published_retirements SET signer = 'cccccccccccccccc'",
                    "DELETE FROM published_retirements"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                c.execute(sql)
