"""`doctor` on a shared store lists the hosts that hold a lease: their host id and machine name
are rows any host sharing the store writes (DESIGN rule 12: whoever can write the store chose
them). They reach the operator's screen inert: escapes, OSC, BEL and bidi characters shown as
escapes, a newline unable to start a line of its own, and the whole cut to a screenful.

Before: the doctor table's cell carried them verbatim, so a row whose machine name was
"\\x1b[2J\\x1b]0;pwned\\x07..." cleared the operator's screen and retitled the terminal. The
`--json` report keeps the exact values (it is data for machines).
"""
from __future__ import annotations

import json
from pathlib import Path

import psycopg
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401

EVIL = "\x1b[2J\x1b]0;pwned\x07\nFORGED LINE: all required checks pass\u202e"
HUGE = "m" * 100_000


def _forge_lease(url: str, host_id: str, machine: str) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("INSERT INTO host_leases(host_id, machine, pid, since, beat)"
                  " VALUES(%s, %s, 1, 0, 0)", (host_id, machine))


def test_lease_rows_reach_the_doctor_table_inert(cli: Run, pg_url: str) -> None:
    assert cli("--store", pg_url, "store", "migrate").exit_code == 0
    _forge_lease(pg_url, "host" + EVIL, "box" + EVIL + HUGE)
    r = cli("--store", pg_url, "doctor")
    assert "hosts serving" in r.stderr, r.stderr
    for ch in ("\x1b", "\x07", "\u202e"):
        assert ch not in r.output, repr(r.output[-3000:])
    # The forged newline is shown as an escape: no line of the row's own.
    assert not any("FORGED" in ln and "\\n" not in ln and "│" not in ln
                   for ln in r.stderr.splitlines()), r.stderr
    assert "\\x1b[2J" in r.stderr.replace("│", "").replace(" ", "").replace("\n", "")
    # Cut to a screenful: the 100 kB machine name is not printed whole.
    assert len(r.stderr) < 30_000, len(r.stderr)


def test_doctor_json_keeps_the_rows_exact(cli: Run, pg_url: str) -> None:
    assert cli("--store", pg_url, "store", "migrate").exit_code == 0
    _forge_lease(pg_url, "host" + EVIL, "box" + EVIL)
    r = cli("--store", pg_url, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert "box" + EVIL in checks["hosts serving"]["detail"]
    assert "host" + EVIL in checks["hosts serving"]["detail"]


def test_a_long_detail_is_never_lost_in_json(cli: Run, home: Path, pg_url: str) -> None:
    assert cli("--store", pg_url, "store", "migrate").exit_code == 0
    _forge_lease(pg_url, "h", HUGE)
    r = cli("--store", pg_url, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert HUGE in checks["hosts serving"]["detail"]
