"""The operator's reading tools show a forged row as one, never fail on it.

Someone with write access to host.db can append rows after the anchored seq, or anywhere once
the chain is broken; `audit verify` names the first bad one. `audit tail` and `audit show`
(plain and `--json`) and the console's audit page are what an incident responder reads next,
and one row whose body is not JSON, not an object, nested past the decoder's stack, holds a
field of the wrong type, or whose timestamp is out of range, made each of them stop with
"unexpected error" (the console: a 500) instead of showing the records around it. Now such a
row is shown as not a valid record, its stored text escaped and cut, and `--json` stays JSON.
"""
from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.console import auditview
from host.ledger.audit import AuditLog, AuditRecord, chain_hash

T0 = 1_700_000_000.0
GOOD_TS = T0 + 1
# A hash with a terminal escape in it, and long.
EVIL_HASH = "\x1b[2J\x1b]0;evil\x07" + "f" * 10_000
FORGED: dict[str, tuple[object, str] | tuple[object, str, str]] = {
    "not-json": (GOOD_TS, "not json \x1b[2J"),
    "a-list": (GOOD_TS, "[1,2]"),
    "nested": (GOOD_TS, "[" * 100_000 + "]" * 100_000),
    "ref-seq-text": (GOOD_TS, '{"kind":"outcome","ref_seq":"abc"}'),
    "ref-seq-huge": (GOOD_TS, '{"kind":"outcome","ref_seq":1e400}'),
    "quota-not-objects": (GOOD_TS, '{"kind":"decision","quota":[1,"x"]}'),
    # an integer no float holds: the reference's finiteness check raised OverflowError
    "quota-window-huge-int": (GOOD_TS, '{"kind":"decision","quota":[{"key":"k","used":1,'
                              '"limit":2,"window_s":' + "9" * 400 + '}]}'),
    "ts-huge": (1e300, '{"detail":"x","event":"test","kind":"supervisor"}'),
    "ts-inf": (float("inf"), '{"detail":"x","event":"test","kind":"supervisor"}'),
    "ts-text": ("soon", '{"detail":"x","event":"test","kind":"supervisor"}'),
    "hash-escape": (GOOD_TS, '{"detail":"x","event":"test","kind":"supervisor"}', EVIL_HASH),
}


def _forge(home: Path, ts: object, body: str, digest: str | None = None) -> int:
    log = AuditLog(home / "host.db", ManualClock(T0))
    for i in range(3):
        log.append(AuditRecord(kind="decision", allowed=False, code="permission_denied",
                               app_id="a", install_id="i1", action="x", message=f"r{i}"))
    log.close()
    c = sqlite3.connect(home / "host.db", isolation_level=None)
    seq, h = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    if digest is None:
        digest = chain_hash(h, seq + 1, ts, body) if isinstance(ts, float) else "0" * 64
    c.execute("INSERT INTO audit VALUES(?, ?, ?, ?, ?)", (seq + 1, ts, body, h, digest))
    c.close()
    return int(seq) + 1


class _Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture(name="cli")
def _cli_fixture(monkeypatch: pytest.MonkeyPatch) -> Callable[..., _Ran]:
    """`stockade --home HOME audit ARGS...`, in this process (the real typer app, 200 columns):
    four commands a case, eleven cases, were 35 s as processes of their own."""
    from typer.testing import CliRunner

    from host.cli.main import root
    from host.cli.output import err_console

    monkeypatch.setattr(err_console, "_width", 200)

    def run(home: Path, *args: str) -> _Ran:
        buf = io.StringIO()
        monkeypatch.setattr(err_console, "_file", buf)
        r = CliRunner().invoke(root, ["--home", str(home), "audit", *args])
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        return _Ran(r.exit_code, r.stdout, r.stderr + buf.getvalue())

    return run


def _strict_json(text: str) -> object:
    def no_constant(c: str) -> object:
        raise ValueError(f"not JSON: {c}")
    return json.loads(text, parse_constant=no_constant)


@pytest.mark.parametrize("name", sorted(FORGED))
def test_tail_and_show_show_a_forged_row(tmp_path: Path, name: str,
                                          cli: Callable[..., _Ran]) -> None:
    seq = _forge(tmp_path, *FORGED[name])
    r = cli(tmp_path, "tail")
    assert r.returncode == 0 and "unexpected" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 4 and "\x1b" not in r.stderr, lines  # one line a record
    assert "not a valid record" in lines[-1] and lines[-1].lstrip().startswith(str(seq)), lines
    r = cli(tmp_path, "show", str(seq))
    assert r.returncode == 0 and "unexpected" not in r.stderr and "\x1b" not in r.stderr, r
    assert "not a valid record" in r.stderr and len(r.stderr) < 5_000, r.stderr
    for args in (("tail", "--json"), ("show", str(seq), "--json")):
        r = cli(tmp_path, *args)
        assert r.returncode == 0, r.stderr
        doc = _strict_json(r.stdout)
        last = doc[-1] if isinstance(doc, list) else doc
        assert isinstance(last, dict) and isinstance(last["record"], dict), last
        assert last["seq"] == seq and last["invalid"], last


@pytest.mark.parametrize("name", sorted(FORGED))
def test_the_console_search_and_refusal_count_read_past_a_forged_row(
        tmp_path: Path, name: str) -> None:
    seq = _forge(tmp_path, *FORGED[name])
    log = AuditLog(tmp_path / "host.db", ManualClock(T0), readonly=True)
    found = auditview.search(log, app="", code="", rule="", since=None)
    assert [e.seq for e in found.entries] == [seq, 3, 2, 1]
    assert found.entries[0].invalid
    assert auditview.refusals_since(log, 0.0) == {"i1": 3}
    shown = log.show(seq)
    assert shown is not None and shown.invalid


def test_show_gives_a_quota_time_no_date_can_show_as_seconds(tmp_path: Path,
                                                            cli: Callable[..., _Ran]) -> None:
    """A valid record may hold any finite `next_free_at`: `show` writes it as seconds."""
    seq = _forge(tmp_path, GOOD_TS, '{"kind":"decision","quota":[{"key":"k","used":1,'
                                    '"limit":2,"window_s":1,"next_free_at":1e300}]}')
    r = cli(tmp_path, "show", str(seq))
    assert r.returncode == 0 and "1e+300 (epoch seconds)" in r.stderr, r.stderr
