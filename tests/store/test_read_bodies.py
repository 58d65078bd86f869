"""A read's record built from its template (`host.ledger.readbody`) is byte for byte the one the
full path builds (`Ledger.admit`: the record, `validated_body`, `record_json`), and a digest
the full path would refuse is refused too. The chain hashes these bytes: a template that
differed in one character would make `audit verify` of a running host's log disagree with the
records' fields."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.clock import ManualClock
from host.ledger import readbody
from host.ledger.ledger import Ledger
from host.ledger.readbody import ReadBodies, read_record
from host.ledger.records import AuditError, record_json, validated_body

# Identifiers as the gate passes them, including what must be escaped in JSON (quotes,
# backslashes, control and non-ASCII characters) and the placeholder's own digits.
_TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('"\\\n\x00é0'),
                max_size=40)
_DIGEST = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@settings(max_examples=300, deadline=None)
@given(app=_TEXT, install=_TEXT, action=_TEXT, rules=st.lists(_TEXT, max_size=4).map(tuple),
       rev=_TEXT, digest=_DIGEST)
def test_a_template_body_is_the_full_paths_body(app: str, install: str, action: str,
                                               rules: tuple[str, ...], rev: str,
                                               digest: str) -> None:
    full = record_json(validated_body(read_record(app, install, action, rules, rev, digest)))
    bodies = ReadBodies()
    assert bodies.body(app, install, action, rules, rev, digest) == full
    assert bodies.body(app, install, action, rules, rev, digest) == full  # from the cache


@pytest.mark.parametrize("digest", ["A" * 64, "0" * 63, "0" * 65, "g" * 64, '0"' * 32])
def test_a_digest_the_full_path_refuses_is_refused(digest: str) -> None:
    bodies = ReadBodies()
    with pytest.raises(AuditError):
        record_json(validated_body(read_record("a", "i", "users.get", (), "r", digest)))
    with pytest.raises(AuditError):
        bodies.body("a", "i", "users.get", (), "r", digest)


def test_a_field_the_full_path_refuses_is_refused_by_the_template() -> None:
    with pytest.raises(AuditError):
        ReadBodies().body("a" * 600, "i", "users.get", (), "r", "0" * 64)


def test_the_template_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readbody, "MAX_TEMPLATES", 8)
    bodies = ReadBodies()
    for n in range(50):
        bodies.body(f"app-{n}", "i", "users.get", (), "r", "0" * 64)
    assert len(bodies._templates) <= 8


def test_a_held_read_commits_the_record_admit_would_have(tmp_path: Path) -> None:
    clock = ManualClock(1_700_000_000.0)
    a = Ledger(tmp_path / "a.db", clock, group_reads=True)
    b = Ledger(tmp_path / "b.db", clock, group_reads=True)
    args = ("app", "in_1", "users.get", ("permit.read",), "r" * 64, "ab" * 32)
    a.admit(read_record(*args), [])
    b.hold_read(*args)
    a.close()
    b.close()
    rows = [Ledger(tmp_path / f"{n}.db", clock).store.conn()
            .execute("SELECT seq, body, hash FROM audit").fetchall() for n in "ab"]
    assert [tuple(r) for r in rows[0]] == [tuple(r) for r in rows[1]] and rows[0]


def test_a_field_holding_the_placeholder_takes_the_full_path() -> None:
    zeros = "0" * 64
    full = record_json(validated_body(read_record(zeros, "i", "users.get", (zeros,), "r",
                                                     "1" * 64)))
    assert ReadBodies().body(zeros, "i", "users.get", (zeros,), "r", "1" * 64) == full
