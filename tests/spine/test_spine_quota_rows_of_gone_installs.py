"""An uninstall takes the install's own quota rings with it (DESIGN rule 13).

Install-scoped quotas (the shipped baseline's bridge rate and persistence writes) and the
refusal budget count on rings keyed by the install id, up to a quota's limit of rows each
(10,000 for persistence writes). No later install can charge them (a reinstall is a new
install id), yet they stayed in `host.db` for good: install/uninstall churn grew the quota
tables by two rings and their units per cycle."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from apphelp import install, write_app, write_policy

from host.apps.operations import install_package, uninstall_app
from host.apps.packages import read_package
from host.apps.publisher import TrustStore, check_signature
from host.home import Home
from host.runtime import Host, HostConfig

SRC = '''
from stockade import App, NotFound

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        ctx.store.put("k", {"v": 1})
        try:
            ctx.store.get("missing")  # a refusal after admission: the refusal budget's
        except NotFound:
            pass
        return "ok"
'''
POLICY = '''
schema = 1
name = "spine"
[[rule]]
id = "churn"
effect = "permit"
apps = ["churn"]
actions = ["livechat.read", "persistence.put", "persistence.get"]
'''
CYCLES = 15


def _rings(home: Home) -> list[str]:
    db = sqlite3.connect(home.host_db)
    try:
        return [str(r[0]) for r in db.execute(
            "SELECT key FROM quota_keys UNION SELECT key FROM quota_slots")]
    finally:
        db.close()


def test_an_uninstall_removes_the_installs_quota_rings(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "spine", POLICY)
    folder = write_app(tmp_path / "apps", "churn", ["livechat.read", "persistence"],
                       ["livechat.room_started"], SRC)
    rec = install(home, folder)
    gone: list[str] = []
    with Host(home, config=HostConfig(watch=False)) as h:
        for _ in range(CYCLES):
            runner = h.runners[rec.install_id]
            assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
            assert any(rec.install_id in key for key in _rings(home))  # it was charged
            if not gone:  # the rings the test looks for: its own quota and the budget
                assert any(k.startswith("refusals:") for k in _rings(home))
            uninstall_app(home, h.installs, rec, users="keep", agents="keep")
            gone.append(rec.install_id)
            h.sync_installs()
            pkg = read_package(folder)
            rec = install_package(home, pkg, check_signature(pkg, TrustStore(home.trust_dir)),
                                  frozenset(pkg.manifest.asked), policy_revision=None,
                                  transfer=True)
            h.sync_installs()
    left = [key for key in _rings(home) if any(g in key for g in gone)]
    # Before: every ring of every uninstalled install (2 or 3 per cycle) stayed.
    assert left == [], f"{len(left)} quota rings of {CYCLES} uninstalled installs kept"
