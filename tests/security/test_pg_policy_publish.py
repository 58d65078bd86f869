"""A policy change made on one host reaches a host on another machine through the shared
store — only when its signature verifies with that host's own keys (`host.apps.published`)."""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pghelp import stockade, until

from host.apps.published import (
    ADOPTED_FILE,
    _payload,
    folder_files,
    follower_for,
    publish,
)
from host.home import Home
from host.keys.keyring import Keyring
from host.migrate import migrate
from host.runtime import Host, HostConfig

SEATS = 'schema = 1\nname = "seats"\n[workspace]\nmax_active_app_users = 7\n'
WIDE_OPEN = ('schema = 1\nname = "evil"\n[[rule]]\nid = "all"\neffect = "permit"\n'
             'apps = ["*"]\nactions = ["roles.assign"]\n')






@pytest.fixture
def two(tmp_path: Path, pg_url: str) -> Iterator[tuple[Home, Home, Host]]:
    migrate(pg_url)
    first = Home(tmp_path / "a", pg_url).ensure()
    Keyring.open(first.keys_dir)
    other = tmp_path / "b"
    for part in ("keys", "trust", "policies"):
        shutil.copytree(first.root / part, other / part)
    second = Home(other, pg_url).ensure()
    host = Host(second, config=HostConfig(watch=False, use_zygote=False)).start()
    yield first, second, host
    host.stop()


def _records(host: Host, kind: str) -> list[str]:
    return [str(e.body.get("detail")) for e in host.ledger.audit.tail(200)
            if e.body["kind"] == kind]


def test_a_policy_added_on_one_host_is_enforced_on_the_other(
        two: tuple[Home, Home, Host], tmp_path: Path) -> None:
    first, second, host = two
    before = host.policy.current().revision
    (tmp_path / "seats.toml").write_text(SEATS)
    added = stockade(first, "policy", "add", str(tmp_path / "seats.toml"))
    assert added.returncode == 0, added.stderr
    assert "published to every host" in added.stderr
    until(lambda: host.policy.current().revision != before, "the other host to adopt it")
    assert (second.policies_dir / "seats.toml").read_text() == SEATS
    assert host.policy.current().seat_ceiling == 7
    assert any(d.endswith(f"on host {host.host_id}") for d in _records(host, "operator.policy_load"))


def _forge(url: str, files: dict[str, str], signer: Keyring | None) -> int:
    with psycopg.connect(url, autocommit=True) as c:
        row = c.execute("SELECT max(version) FROM published_policy").fetchone()
        version = int((row[0] if row else 0) or 0) + 1
        payload = _payload(version, files, "sha256:forged")
        kid, sig = signer.sign(payload) if signer else ("0123456789abcdef", b"\0" * 64)
        c.execute("INSERT INTO published_policy(version, files, revision, kid, signature,"
                  " published_at, origin) VALUES(%s, %s, %s, %s, %s, 0, 'attacker')",
                  (version, json.dumps(files), "sha256:forged", kid, sig))
    return version


@pytest.mark.parametrize("how", ["unsigned", "another key", "signed, but a path"])
def test_a_bundle_written_into_the_store_by_someone_else_is_refused(
        two: tuple[Home, Home, Host], tmp_path: Path, how: str) -> None:
    first, second, host = two
    before = host.policy.current().revision
    files_before = sorted(p.name for p in second.policies_dir.glob("*.toml"))
    signer = {"unsigned": None, "another key": Keyring.open(tmp_path / "stranger"),
              "signed, but a path": Keyring.open(first.keys_dir)}[how]
    name = "../escaped.toml" if how == "signed, but a path" else "evil.toml"
    version = _forge(str(first.store_url), {name: WIDE_OPEN}, signer)
    until(lambda: any(f"published bundle {version} refused" in d
                       for d in _records(host, "operator.policy_refused")),
           "the refusal to be recorded")
    assert host.policy.current().revision == before
    assert sorted(p.name for p in second.policies_dir.glob("*.toml")) == files_before
    assert not (second.root / "escaped.toml").exists()


WIDE = 'schema = 1\nname = "wide"\n[workspace]\nmax_active_app_users = 50\n'
NARROW = 'schema = 1\nname = "narrow"\n[workspace]\nmax_active_app_users = 2\n'


def _published_twice(tmp_path: Path, url: str) -> tuple[Home, Keyring]:
    """A host's home, and bundles 1 (wide) and 2 (the operator narrowed it) in the store."""
    migrate(url)
    home = Home(tmp_path / "b", url).ensure()
    ring = Keyring.open(home.keys_dir)
    src = tmp_path / "src"
    src.mkdir()
    for revision, text in (("rev-wide", WIDE), ("rev-narrow", NARROW)):
        (src / "p.toml").write_text(text)
        publish(url, ring, src, revision, "host-a")
    return home, ring


def test_the_bundle_table_refuses_update_and_delete(pg_url: str, tmp_path: Path) -> None:
    """Host code cannot rewrite or drop a published bundle (an engine trigger; whoever owns the
    store can drop the trigger: the next test is what holds against them)."""
    _published_twice(tmp_path, pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        for sql in ("DELETE FROM published_policy WHERE version = 2",
                    "UPDATE published_policy SET files = '{}' WHERE version = 2",
                    "TRUNCATE published_policy"):
            with pytest.raises(psycopg.Error, match="append-only"):
                c.execute(sql)
        assert c.execute("SELECT count(*) FROM published_policy").fetchone() == (2,)


def test_a_restarted_host_never_goes_back_to_an_older_bundle(pg_url: str,
                                                             tmp_path: Path) -> None:
    """Whoever can write the store deletes the newest bundle, so an older, wider, genuinely
    signed one is the newest again. A host that adopted the newer one keeps it across a restart
    (the highest version it adopted is on its own disk) and records the refusal (before the
    fix: the restarted host adopted the wider bundle, and nothing was recorded)."""
    home, ring = _published_twice(tmp_path, pg_url)
    refused: list[tuple[str, str]] = []
    follower = follower_for(home, ring, lambda kind, why: refused.append((kind, why)))
    assert follower is not None
    assert folder_files(home.policies_dir) == {"p.toml": NARROW}
    follower.close()

    with psycopg.connect(pg_url, autocommit=True) as c:  # the store's owner
        c.execute("ALTER TABLE published_policy DISABLE TRIGGER USER")
        c.execute("DELETE FROM published_policy WHERE version = 2")
    follower = follower_for(home, ring, lambda kind, why: refused.append((kind, why)))
    assert follower is not None
    try:
        assert folder_files(home.policies_dir) == {"p.toml": NARROW}
        assert [kind for kind, _ in refused] == ["policy_refused"]
        assert "older than bundle 2" in refused[0][1]
        follower.adopt()  # refused once, not at every poll
        assert len(refused) == 1
        # The operator publishes again: numbered past what this home adopted, so adopted.
        again = publish(pg_url, ring, home.policies_dir, "rev-again", "host-a",
                        home.root / ADOPTED_FILE)
        assert again == 3 and follower.adopt() == 3 and len(refused) == 1
    finally:
        follower.close()


def test_a_bundle_refused_for_an_unknown_key_is_looked_at_again_once_the_key_is_adopted(
        tmp_path: Path, pg_url: str) -> None:
    """A follower that read the keys, then (after host A rotated its key and published with
    the new one) the newest bundle, refused it for its unknown key, and never looked at it
    again once it had adopted that key: the host enforced the old policy until someone
    published again or it restarted."""
    from host.keys.shared import publish_rotation
    from policies.loader import load_policy

    migrate(pg_url)
    a = Home(tmp_path / "a", pg_url).ensure()
    ring_a = Keyring.open(a.keys_dir)
    for part in ("keys", "trust", "policies"):
        shutil.copytree(a.root / part, tmp_path / "b" / part)
    b = Home(tmp_path / "b", pg_url).ensure()
    ring_b = Keyring.open(b.keys_dir)
    refusals: list[str] = []
    follow = follower_for(b, ring_b, lambda _kind, detail: refusals.append(detail))
    assert follow is not None
    follow.keys.adopt()  # B's poll, its first step: no new key yet
    prev = ring_a.current  # meanwhile, on host A: rotate, then publish with the new key
    ring_a.rotate()
    publish_rotation(pg_url, ring_a, prev)
    (a.policies_dir / "seats.toml").write_text(SEATS)
    publish(pg_url, ring_a, a.policies_dir, load_policy(a.policies_dir).revision, "host a",
            a.root / ADOPTED_FILE)
    assert follow.policy.adopt() is None and refusals  # its second step: an unknown key
    for _ in range(3):  # the next polls adopt the key, then the bundle
        follow.adopt()
    assert (b.policies_dir / "seats.toml").read_text() == SEATS
    follow.close()
