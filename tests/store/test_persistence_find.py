"""`persistence.find`'s reply is bounded by bytes before anything is read or parsed, on both
stores: records that would not cross in one frame cost the host their sizes, not their values."""
from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

import host.bridges.persistence as P
from host.bridges.persistence import Association, PersistenceError, PersistenceStore
from sandbox import frames
from sandbox.frames import Reply
from sandbox.wire import encode
from sandbox.wirecaps import MAX_FRAME_BYTES

BIG = "x" * (P.MAX_VALUE_BYTES - 2)  # a value at the cap: 64 KiB of canonical JSON
A = Association("misc", "a")


def _counting_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count every value `persistence` parses (its module's `json.loads`, nobody else's)."""
    parsed: list[int] = []

    def loads(text: str) -> Any:
        parsed.append(len(text))
        return json.loads(text)

    monkeypatch.setattr(P, "json", SimpleNamespace(loads=loads, dumps=json.dumps))
    return parsed


def test_a_find_past_one_frame_is_refused_before_a_value_is_read(
        db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """20 values of 64 KiB (1.3 MB) cannot cross in one 1 MiB frame: before, the host parsed
    them all (and encoded them again) only for the reply to be refused as too large."""
    s = PersistenceStore(db.target)
    for i in range(20):
        s.put("i1", f"k{i:02}", BIG, A)
    assert 20 * P.MAX_VALUE_BYTES > MAX_FRAME_BYTES
    parsed = _counting_loads(monkeypatch)
    with pytest.raises(PersistenceError, match="more than one reply carries"):
        s.find("i1", A)
    assert parsed == []  # decided from the sizes SQL reports alone


def test_a_find_that_fits_returns_every_record(db: Any) -> None:
    s = PersistenceStore(db.target)
    for i in range(10):
        s.put("i1", f"k{i}", BIG, A)
    s.put("i2", "k0", "other install", A)
    got = s.find("i1", A)
    assert [k for k, _ in got] == [f"k{i}" for i in range(10)] and got[0][1] == BIG


def test_the_largest_find_allowed_fits_one_frame_even_escaped(db: Any) -> None:
    """The budget counts what the reply spells: keys of control characters (6 bytes each once
    escaped) and values full of them fill it, and the reply still crosses in one frame."""
    s = PersistenceStore(db.target)
    key_stem = "\x01" * (P.MAX_KEY_LEN - 3)
    value = "\x02" * ((P.MAX_VALUE_BYTES - 2) // 6)  # stored escaped: ~64 KiB of JSON
    i = 0
    while True:
        s.put("i1", f"{key_stem}{i:03}", value, A)
        try:
            got = s.find("i1", A)
        except PersistenceError:
            break
        i += 1
    assert i > 5  # several records fitted before the budget refused
    s.delete("i1", f"{key_stem}{i:03}")
    got = s.find("i1", A)
    reply = Reply(id=1, ok=True, result=[{"key": k, "value": v} for k, v in got])
    encode(frames.encode(reply))  # raises FrameError past the frame cap


def test_an_unhashable_association_kind_is_bad_input_not_a_host_error(db: Any) -> None:
    """A list as `kind` raised TypeError (the app's `internal`, its unit kept)."""
    s = PersistenceStore(db.target)
    for assoc in ({"kind": ["room"], "id": "r"}, [{"k": 1}, "r"], {"kind": {}, "id": "r"}):
        with pytest.raises(PersistenceError, match="association kind"):
            s.find("i1", assoc)  # type: ignore[arg-type]
        with pytest.raises(PersistenceError, match="association kind"):
            s.put("i1", "k", 1, assoc)  # type: ignore[arg-type]


def test_the_harness_repeats_the_hosts_find_budget() -> None:
    from sandbox import harness_server

    assert harness_server.FIND_REPLY_BYTES == P.FIND_REPLY_BYTES
    assert harness_server.FIND_RECORDS == PersistenceStore.find.__defaults__[0]  # type: ignore[index]


def test_a_find_that_fits_is_served_without_parsing_a_value(
        db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host serves a find with each stored value's JSON as it is: before, it parsed up to
    ~900 KiB of values (~480,000 JSON values) and encoded them again, ~23 ms of the host's
    core a call, a quarter of it at the default quota. The app's reply is byte for byte what
    parsing and encoding again gave."""
    from host.supervise.served import HostServed

    s = PersistenceStore(db.target)  # no install to check: these rows are the test's
    rows = [[0] * 2048 for _ in range(14)]  # ~60 KiB of JSON, ~29,000 values each
    for i in range(14):
        s.put("i1", f"k{i:02}", rows, A)
    s.put("i1", "k-text", {"é": "\x01 text", "n": 1.5}, A)
    expected = frames.encode(Reply(id=7, ok=True, result=[
        {"key": k, "value": v} for k, v in s.find("i1", A)]))
    served = HostServed(db.target, 1.0, None, None, None)  # type: ignore[arg-type]
    parsed = _counting_loads(monkeypatch)
    find = served.actions()["persistence.find"]
    result = find(SimpleNamespace(install_id="i1"), {"association": {"kind": "misc", "id": "a"}},
                  None, {})  # type: ignore[arg-type]
    assert frames.encode(Reply(id=7, ok=True, result=result)) == expected
    assert parsed == []  # before: 15 values parsed
