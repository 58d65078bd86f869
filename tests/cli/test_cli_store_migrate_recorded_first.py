"""A schema change `stockade store migrate` makes is in the audit chain even when the command
dies right after it (DESIGN rules 9 and 14: the record before the act).

The record was appended only after the migration had committed, and only when a component's
version moved: a migrate killed in between (SIGKILL, a lost terminal, an OOM kill) left the
schema changed with no record, and its re-run, finding nothing to change, wrote none either.
When the store's audit table is already current, the record now goes first (`audited`), so the
chain shows the change, or the change interrupted.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures

import host.migrate


def _store_migrate_records(home: Path) -> list[dict[str, object]]:
    with sqlite3.connect(home / "host.db") as c:
        bodies = [json.loads(b) for (b,) in c.execute("SELECT body FROM audit ORDER BY seq")]
    return [b for b in bodies if b["kind"] == "operator.store_migrate"]


def test_a_migration_killed_after_it_committed_is_in_the_chain(
        cli: Run, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("init").exit_code == 0
    assert cli("store", "migrate").exit_code == 0
    with sqlite3.connect(home / "host.db") as c:  # the quota component one version behind
        c.execute("ALTER TABLE quota_keys DROP COLUMN carried")
        c.execute("UPDATE schema_meta SET version = 2 WHERE component = 'quota'")
    real = host.migrate.migrate

    def killed_after(target: object) -> object:
        real(target)  # type: ignore[arg-type]
        raise KeyboardInterrupt  # the process ends here: committed, nothing after it runs

    monkeypatch.setattr(host.migrate, "migrate", killed_after)
    assert cli("store", "migrate").exit_code != 0  # click turns the interrupt into an abort
    monkeypatch.setattr(host.migrate, "migrate", real)
    assert cli("store", "migrate").exit_code == 0  # nothing left to change
    assert cli("store", "status").exit_code == 0
    details = [str(r.get("detail")) for r in _store_migrate_records(home)]
    assert any("quota 2 -> 3" in d for d in details), details
    assert cli("audit", "verify").exit_code == 0
