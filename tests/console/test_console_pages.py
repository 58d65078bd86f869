"""The console's read-only pages over real HTTP: quota usage against the limits with its chart
and when the next unit frees, the seat count against the ceiling, and the policy revision, its
findings and the host keys — each read from the same stores the host and the CLI use."""
from __future__ import annotations

import re

import httpx
from conhelp import PASSWORD, Served

from host.apps.installs import InstallStore
from host.clock import SystemClock
from host.ledger.quota import Charge, QuotaStore
from policies.loader import load_policy

POLICY = '''schema = 1
name = "console"
[workspace]
max_active_app_users = 5
[[rule]]
id = "sync-create"
effect = "permit"
apps = ["agent-sync"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
[[quota]]
id = "sync-creates"
apps = ["agent-sync"]
action = "users.create"
limit = 3
window = "10m"
scope = "install"
'''


def _client(s: Served) -> httpx.Client:
    c = httpx.Client(base_url=s.url, timeout=10)
    r = c.post("/console/login", data={"username": "operator", "password": PASSWORD},
               headers={"Origin": s.url})
    assert r.status_code in (200, 303), r.text
    return c


def test_quota_usage_chart_and_seats(served: Served) -> None:
    (served.home.policies_dir / "console.toml").write_text(POLICY)
    store = InstallStore(served.home.host_db)
    rec = store.by_app("agent-sync")
    store.close()
    assert rec is not None
    quotas = QuotaStore(served.home.host_db, SystemClock())
    key = f"install:{rec.install_id}:users.create"
    for i in range(3):  # the quota full: three units taken through the ledger's own primitive
        quotas.reserve([Charge(key, 3, 600)], f"op_{i}")
    quotas.close()
    page = _client(served).get("/console/quotas").text
    row = re.search(r'<tr id="quota-agent-sync-sync-creates">(.*?)</tr>', page, re.S)
    assert row is not None, page
    assert "3 / 3" in row.group(1) and "a unit is free now" not in row.group(1)
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([0-9.]+)"', row.group(1))]
    assert len(heights) == 12 and heights[-1] > 0 and sum(heights) > 0  # the newest slice
    assert "of a\nworkspace ceiling of 5" in page or "workspace ceiling of 5" in page


def test_policy_revision_findings_and_keys(served: Served) -> None:
    c = _client(served)
    page = c.get("/console/policy").text
    revision = load_policy(served.home.policies_dir).revision
    assert revision in page
    (served.home.policies_dir / "wide.toml").write_text(
        'schema = 1\nname = "wide"\n[[rule]]\nid = "all"\neffect = "permit"\napps = ["*"]\n'
        'actions = ["*"]\n')
    page = c.get("/console/policy").text
    assert "does not load" in page and "STK015" in page
    assert re.search(r'<table id="keys">.*current', page, re.S)
