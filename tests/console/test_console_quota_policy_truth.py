"""The quotas and policy pages say what the host and the CLI say, or that they cannot tell and
why: never "no quota applies", "no ceiling" or a 500 over a policy folder that does not load, a
store that cannot be read now or a keyring that does not read; and a quota's figures (units in
the window, when the next frees) are the ledger's own, as `stockade policy explain` prints them,
also after a policy lowered a limit below the units its ring holds."""
from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import UTC, datetime

from conhelp import QUOTA_POLICY, Served, signed_in
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.cli.main import root
from host.ledger.quota import Charge, QuotaStore


class _At:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def _row(page: str) -> str:
    row = re.search(r'<tr id="quota-agent-sync-sync-creates">(.*?)</tr>', page, re.S)
    assert row is not None, page
    return row.group(1)


def test_quota_figures_are_the_ledgers_as_the_cli_prints_them(served: Served) -> None:
    home = served.home
    (home.policies_dir / "console.toml").write_text(QUOTA_POLICY.replace("LIMIT", "3"))
    with InstallStore(home.host_store) as store:
        rec = store.by_app("agent-sync")
    assert rec is not None
    key = f"install:{rec.install_id}:users.create#sync-creates"
    now = time.time()
    for i, age in enumerate((300, 200, 100)):  # three units, 100 s apart, the quota full
        quotas = QuotaStore(home.host_db, _At(now - age))  # type: ignore[arg-type]
        quotas.reserve([Charge(key, 3, 600)], f"op_{i}")
        quotas.close()
    # The operator tightens the quota to 2: the next unit frees when the 2nd newest does.
    (home.policies_dir / "console.toml").write_text(QUOTA_POLICY.replace("LIMIT", "2"))
    r = CliRunner().invoke(root, [
        "--home", str(home.root), "policy", "explain", "--json", "--policy",
        str(home.policies_dir), "--app", "agent-sync", "--action", "users.create",
        "--install", rec.install_id, "--arg", "username=sync.bot", "--arg", "name=Bot", "--arg", "type=bot",
        # as if granted (the install holds livechat.read alone): explain decides with the
        # install's grants by default, and would refuse before any quota is charged
        "--grant", "users.create"])
    cli = next(q for q in json.loads(r.stdout)["quotas"] if q["quota"] == "sync-creates")
    assert cli["key"] == key and cli["used"] == 3
    frees = datetime.fromtimestamp(cli["next_free_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
    row = _row(signed_in(served).get("/console/quotas").text)
    assert "3 / 2" in row, row
    assert frees in row, (frees, row)  # was: the oldest unit's expiry, 100 s too early


def test_a_policy_folder_that_does_not_load_is_cannot_tell_not_no_quota(served: Served) -> None:
    home = served.home
    (home.policies_dir / "console.toml").write_text(QUOTA_POLICY.replace("LIMIT", "3"))
    (home.policies_dir / "broken.toml").write_text("schema = [[[\n")
    page = signed_in(served).get("/console/quotas").text
    assert "No quota of the policy applies" not in page  # the host still enforces its last
    assert "the policy sets no ceiling" not in page
    assert "cannot tell" in page and "does not load" in page


def test_a_store_that_cannot_be_read_is_cannot_tell_not_a_500(served: Served) -> None:
    home = served.home
    (home.policies_dir / "console.toml").write_text(QUOTA_POLICY.replace("LIMIT", "3"))
    c = signed_in(served)
    lock = sqlite3.connect(home.host_db)
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the host's store (a migration)
    try:
        quotas = c.get("/console/quotas", timeout=30)
        policy = c.get("/console/policy", timeout=30)
    finally:
        lock.rollback()
        lock.close()
    assert quotas.status_code == 200, quotas.text
    assert "cannot tell" in quotas.text and "No quota of the policy applies" not in quotas.text
    assert policy.status_code == 200, policy.text  # its reads need no write lock


def test_a_keyring_that_does_not_read_is_cannot_tell_not_a_500(served: Served) -> None:
    (served.home.keys_dir / "keyring.json").write_text("{not json")
    r = signed_in(served).get("/console/policy")
    assert r.status_code == 200, r.text
    assert "cannot tell" in r.text.lower() and "keyring" in r.text

