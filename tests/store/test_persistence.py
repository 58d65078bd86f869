"""Per-install storage: isolation between installs, associations, caps."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import host.bridges.persistence as P
from host.bridges.persistence import Association, PersistenceError, PersistenceStore


def test_isolation_between_installs(tmp_path: Path) -> None:
    s = PersistenceStore(tmp_path / "host.db")
    room = Association("room", "GENERAL")
    s.put("i1", "k", {"secret": 1}, room)
    s.put("i2", "k", {"other": 2}, room)
    assert s.get("i1", "k") == {"secret": 1}
    assert s.get("i2", "k") == {"other": 2}
    assert s.find("i2", room) == [("k", {"other": 2})]
    assert s.delete("i2", "k")
    assert s.get("i1", "k") == {"secret": 1}  # i2's delete never reaches i1
    assert s.get("i3", "k") is None


def test_associations_and_remove_all(tmp_path: Path) -> None:
    s = PersistenceStore(tmp_path / "host.db")
    v = Association("visitor", "v1")
    s.put("i1", "a", 1, v)
    s.put("i1", "b", 2, v)
    s.put("i1", "c", 3, Association("user", "v1"))
    s.put("i1", "d", 4)
    assert s.find("i1", v) == [("a", 1), ("b", 2)]
    s.put("i1", "a", 10)  # re-put without association drops it
    assert s.find("i1", v) == [("b", 2)]
    s.put("i2", "z", 0)
    assert s.remove_all("i1") == 4
    assert s.keys("i1") == [] and s.keys("i2") == ["z"]
    with pytest.raises(PersistenceError):
        s.find("i1", Association("database", "x"))


def test_value_caps(tmp_path: Path) -> None:
    s = PersistenceStore(tmp_path / "host.db")
    with pytest.raises(PersistenceError):
        s.put("i1", "big", "x" * (P.MAX_VALUE_BYTES + 1))
    deep: object = 0
    for _ in range(P.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(PersistenceError):
        s.put("i1", "deep", deep)
    for bad in (float("nan"), {1: "x"}, object(), b"bytes"):
        with pytest.raises(PersistenceError):
            s.put("i1", "bad", bad)
    with pytest.raises(PersistenceError):
        s.put("i1", "", 1)
    with pytest.raises(PersistenceError):
        s.put("i1", "k" * 300, 1)


def test_key_and_byte_caps_per_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "MAX_KEYS_PER_INSTALL", 3)
    monkeypatch.setattr(P, "MAX_BYTES_PER_INSTALL", 100)
    s = PersistenceStore(tmp_path / "host.db")
    for k in "abc":
        s.put("i1", k, 1)
    with pytest.raises(PersistenceError, match="keys"):
        s.put("i1", "d", 1)
    s.put("i1", "a", 2)  # replacing an existing key is fine
    s.put("i2", "d", 1)  # the cap is per install
    assert s.delete("i1", "c")
    s.put("i1", "d", 1)
    with pytest.raises(PersistenceError, match="bytes"):
        s.put("i1", "a", "x" * 120)
    s.put("i1", "a", "x" * 60)  # replacing counts the new size, not both
    s.remove_all("i1")
    s.put("i1", "a", "x" * 90)


def test_wire_shaped_associations_and_module_remove_all(tmp_path: Path) -> None:
    s = PersistenceStore(tmp_path / "host.db")
    s.put("i1", "a", 1, {"kind": "room", "id": "r1"})
    assert s.find("i1", {"kind": "room", "id": "r1"}) == [("a", 1)]
    with pytest.raises(PersistenceError):
        s.put("i1", "b", 1, {"kind": "room", "id": "r1", "install_id": "i2"})
    assert P.remove_all(tmp_path / "host.db", "i1") == 1
    assert s.keys("i1") == []


def test_a_nul_in_a_key_or_association_is_refused_on_either_store(db: Any) -> None:
    """PostgreSQL cannot hold U+0000 (psycopg refused it as a store error: the bridge's
    `internal`); a key or association id with one is the app's bad input on every store."""
    s = PersistenceStore(db.target)
    for call in (lambda: s.put("i1", "a\x00b", 1), lambda: s.get("i1", "\x00"),
                 lambda: s.delete("i1", "k\x00"),
                 lambda: s.put("i1", "k", 1, Association("room", "r\x00")),
                 lambda: s.find("i1", Association("room", "\x00"))):
        with pytest.raises(PersistenceError, match="NUL"):
            call()
    s.put("i1", "k", "a value may hold \x00: it is stored as JSON text")
    assert s.get("i1", "k") == "a value may hold \x00: it is stored as JSON text"


def test_keys_and_associations_count_toward_the_install_cap(
        db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only values counted: 10,000 keys and association ids of up to 1 KiB each went over the
    32 MiB cap unseen (~20 MiB more). A record's key and association count now, on either
    store, and a store of the first schema counts its records again on its migration."""
    monkeypatch.setattr(P, "MAX_BYTES_PER_INSTALL", 600)
    s = PersistenceStore(db.target)
    long_key, long_id = "k" * 250, "r" * 250
    s.put("i1", long_key, 1, Association("room", long_id))  # 1 + 250 + 4 + 250 bytes
    with pytest.raises(PersistenceError, match="bytes"):
        s.put("i1", "k" * 249, 1, Association("room", long_id))
    assert s.delete("i1", long_key)  # its bytes, all of them, given back
    s.put("i1", "k" * 249, 1, Association("room", long_id))
    c = s.store.conn()
    (counted,) = c.execute("SELECT bytes FROM persist_usage WHERE install_id = ?",
                           ("i1",)).fetchone()
    assert counted == 1 + 249 + 4 + 250
    # As the first schema left it: only the value counted. Its migration counts again.
    with s.store.transaction() as w:
        w.execute("UPDATE persist_usage SET bytes = 1 WHERE install_id = ?", ("i1",))
        w.execute("UPDATE schema_meta SET version = 1 WHERE component = ?", ("persistence",))
    s.close()
    if not isinstance(db.target, Path):  # a shared store migrates only by `store migrate`
        from host.migrate import migrate

        migrate(db.target)
    again = PersistenceStore(db.target)
    (recounted,) = again.store.conn().execute(
        "SELECT bytes FROM persist_usage WHERE install_id = ?", ("i1",)).fetchone()
    assert recounted == counted
    again.close()
