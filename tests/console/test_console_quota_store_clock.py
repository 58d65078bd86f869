"""On a shared PostgreSQL store the quotas page reads a quota's window at the ledger's "now",
the database's clock (`Ledger.quota_state`: `Store.clock_in`, `PgConn.began_at`), as the hosts
charging it do. It read it at the console machine's own clock: with that clock a window ahead,
a unit the hosts still count showed as freed ("0 / 1"), and one behind showed it freeing later
than it does."""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from host.clock import SystemClock
from host.console import pages
from host.home import Home
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge
from host.migrate import migrate
from policies.loader import load

WINDOW_S = 600
POLICY = f'''schema = 1
name = "clock"
[[quota]]
id = "creates"
apps = ["agent-sync"]
action = "users.create"
limit = 1
window = "{WINDOW_S // 60}m"
scope = "install"
'''


def test_the_quota_page_reads_the_window_at_the_databases_clock(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    migrate(pg_url)
    home = Home(tmp_path / "home", store_url=pg_url).ensure()
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "clock.toml").write_text(POLICY)
    policy = load([tmp_path / "policies"]).policy
    assert policy is not None
    rec = SimpleNamespace(app_id="agent-sync", install_id="inst-1")
    [quota] = policy.quotas
    key = quota.key(rec.app_id, rec.install_id)
    host = Ledger(pg_url, SystemClock(), anchor_path=tmp_path / "h" / "audit.anchor",
                  key_path=tmp_path / "h" / "anchor.key")
    try:
        assert host.admit(AuditRecord(kind="decision", app_id=rec.app_id, install_id="inst-1",
                                      action="users.create", op_id="one", write=True),
                          [Charge(key, 1, float(WINDOW_S))]).allowed
        truth = host.quota_state(key, 1, float(WINDOW_S))
    finally:
        host.close()
    assert truth.used == 1 and truth.next_free_at is not None
    # The console's machine: its clock a window ahead of the database's.
    real = time.time
    monkeypatch.setattr(pages.time, "time", lambda: real() + WINDOW_S + 1)
    [view] = pages.quotas(home, policy, [rec])  # type: ignore[list-item]
    assert view.used == 1, view  # was 0: the unit the hosts count read as freed
    assert view.next_free_at == pytest.approx(truth.next_free_at, abs=1.0)
    assert view.next_free_in_s is not None and 0 < view.next_free_in_s <= WINDOW_S, view
