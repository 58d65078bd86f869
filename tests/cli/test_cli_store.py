"""`--store`, `HOME/store.toml` and `stockade store status|migrate` against a real PostgreSQL."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures


def test_status_then_migrate_then_current(cli: Run, pg_url: str) -> None:
    r = cli("--store", pg_url, "store", "status", "--json")
    assert r.exit_code == 1
    report = json.loads(r.stdout)
    assert report["kind"] == "postgresql" and not report["current"]
    assert {c["component"] for c in report["components"]} >= {"audit", "quota", "installs"}
    r = cli("--store", pg_url, "store", "migrate")
    assert r.exit_code == 0, r.output
    assert "current" in r.stderr and "needs" not in r.stderr
    r = cli("--store", pg_url, "store", "status", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["current"] is True


def test_a_migration_that_changed_the_schema_is_recorded_in_the_chain(
        cli: Run, pg_url: str) -> None:
    """Who changed the shared store's schema, and from what to what (before: no record)."""
    import psycopg

    assert cli("--store", pg_url, "store", "migrate").exit_code == 0
    with psycopg.connect(pg_url, autocommit=True) as c:  # a component one version behind
        c.execute("ALTER TABLE host_leases DROP COLUMN beat_db, DROP COLUMN grace_s")
        c.execute("UPDATE schema_meta SET version = 1 WHERE component = 'leases'")
    r = cli("--store", pg_url, "store", "migrate")
    assert r.exit_code == 0, r.output
    assert cli("--store", pg_url, "store", "migrate").exit_code == 0  # nothing to do: no record
    with psycopg.connect(pg_url, autocommit=True) as c:
        bodies = [json.loads(b) for (b,) in c.execute("SELECT body FROM audit ORDER BY seq")]
    migrations = [b for b in bodies if b["kind"] == "operator.store_migrate"]
    assert [m["detail"] for m in migrations][-1] == "schema leases 1 -> 2"
    assert migrations[-1]["actor"]
    assert cli("--store", pg_url, "audit", "verify").exit_code == 0


def test_a_host_refuses_an_unmigrated_store_and_names_the_command(cli: Run, pg_url: str) -> None:
    r = cli("--store", pg_url, "init")
    assert r.exit_code != 0
    assert "stockade store migrate" in r.output and "Traceback" not in r.output


def test_store_toml_names_the_store_and_must_be_private(cli: Run, home: Path,
                                                       pg_url: str) -> None:
    assert cli("--store", pg_url, "store", "migrate").exit_code == 0
    home.mkdir(mode=0o700, exist_ok=True)  # the migration record anchored in it
    conf = home / "store.toml"
    conf.write_text(f'url = "{pg_url}"\n')
    os.chmod(conf, 0o644)
    r = cli("store", "status")
    assert r.exit_code == 2 and "readable by others" in r.stderr and "chmod 600" in r.stderr
    os.chmod(conf, 0o600)
    r = cli("store", "status", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["kind"] == "postgresql"
    r = cli("doctor")
    assert "PostgreSQL, schema current" in r.stderr and "0 host(s) hold a lease" in r.stderr


def test_the_password_is_never_printed_and_a_bad_url_is_a_usage_error(
        cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    # In the variable: a password typed in --store is refused before it is read
    # (test_cli_store_url_password_never_printed.py).
    monkeypatch.setenv("STOCKADE_STORE", "postgresql://u:hunter2@127.0.0.1:1/x")
    r = cli("store", "status")
    monkeypatch.delenv("STOCKADE_STORE")
    assert r.exit_code == 2 and "cannot reach" in r.stderr
    assert "hunter2" not in r.output and "u:***@" in r.stderr
    r = cli("--store", "mysql://db/x", "store", "status")
    assert r.exit_code == 2 and "not a PostgreSQL URL" in r.stderr


def test_bench_store_puts_both_stores_side_by_side_in_a_schema_of_its_own(
        cli: Run, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's database needs no migration for it, and keeps nothing of it."""
    from host.bench import storebench

    monkeypatch.setattr(storebench, "QUICK", (40, 0.5))  # the figures' shape, not their worth
    r = cli("--store", pg_url, "bench", "--quick", "--json")
    assert r.exit_code == 0, r.output
    figures = {f["store"]: f for f in json.loads(r.stdout)["stores"]}
    assert set(figures) == {"sqlite", "postgresql"}
    assert all(f["create_us_p50"] > 0 and f["hosts3_creates_per_s"] > 0
               for f in figures.values())
    r = cli("--store", pg_url, "store", "status", "--json")
    assert not json.loads(r.stdout)["current"]  # nothing was created in the operator's schema


def test_a_fresh_sqlite_home_needs_no_migrate(cli: Run, home: Path) -> None:
    """A SQLite store makes or upgrades each component when a command first opens it: a new
    home's components not yet opened are not "needs `stockade store migrate`", exit 1."""
    assert cli("init").exit_code == 0
    r = cli("store", "status")
    assert r.exit_code == 0, r.output
    assert "made when first used" in r.stderr and "store migrate" not in r.stderr
    r = cli("store", "status", "--json")
    report = json.loads(r.stdout)
    assert r.exit_code == 0 and report["kind"] == "sqlite" and report["ready"] is True
