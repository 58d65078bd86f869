"""The console's approval writes the audit record `app consent` writes: its "grants before" are
what the operator's signed consent granted, not the install row as it stands. The console put
the row's grants there, so grants written into `host.db` behind the host's back (which no
verified consent carries to the update) were entered into the chain, under the operator's
name, as what the app held before."""
from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from apphelp import write_app
from conhelp import SRC, Served, signed_in
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.cli.main import root
from host.clock import SystemClock
from host.ledger.audit import AuditLog


def _field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert m is not None, name
    return m.group(1)


def test_the_approval_audits_the_consented_grants_not_the_rows(served: Served,
                                                               tmp_path: Path) -> None:
    db = sqlite3.connect(served.home.host_db)
    with db:  # a store writer widens the row behind the host's back
        db.execute("UPDATE install_installs SET grants = ? WHERE app_id = 'agent-sync'",
                   ('["livechat.read", "users.read"]',))
    db.close()
    folder = write_app(tmp_path / "v2", "agent-sync", ["livechat.read", "users.read"], [], SRC)
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', 'version = "1.1.0"')
    (folder / "app.toml").write_text(toml)
    r = CliRunner().invoke(root, ["--home", str(served.home.root), "app", "update", "agent-sync",
                                  str(folder), "--allow-unsigned"])
    assert r.exit_code == 1, r.output  # parked: it waits for consent
    with InstallStore(served.home.host_db) as store:
        rec = store.by_app("agent-sync")
    assert rec is not None
    c = signed_in(served)
    page = c.get(f"/console/updates/{rec.install_id}").text
    r = c.post(f"/console/updates/{rec.install_id}/approve",
               data={"csrf": _field(page, "csrf"), "package": _field(page, "package"),
                     "publisher": _field(page, "publisher"), "allow_unsigned": "yes",
                     "grant": ["users.read"]}, headers={"Origin": served.url})
    assert r.status_code == 303, r.text
    log = AuditLog(served.home.host_db, SystemClock())
    try:
        details = [str(e.body.get("detail", "")) for e in log.tail(50)
                   if str(e.body.get("detail", "")).startswith("update; grants before")]
    finally:
        log.close()
    assert details, "no consent record"
    # As `app consent` says it: the row did not verify, so nothing was granted before.
    assert details[-1] == "update; grants before: none", details
