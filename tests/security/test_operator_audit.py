"""Rule 14: the operator is audited too. Every operator command, run through the real CLI, leaves
an `operator.*` record (actor = the OS account, what changed) and its outcome in the same hash
chain the gate writes; `audit verify` holds; a setting's value never reaches the chain; and an
operator change whose record cannot be written is not made (audit before act).
"""
from __future__ import annotations

import io
import json
import os
import pwd
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from host.apps.packages import package_folder
from host.cli.main import root
from host.cli.output import err_console
from host.clock import SystemClock
from host.ledger.audit import AuditLog

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from apps_helpers import SECRET_SETTINGS, app_files, write_folder

SECRET = "s3cr3t-crm-token-value"  # a planted value that must never be audited
ME = pwd.getpwuid(os.geteuid()).pw_name


class Run:
    def __init__(self, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.home, self.mp, self.runner = home, monkeypatch, CliRunner()

    def __call__(self, *args: str, ok: bool = True, input: str | None = None) -> Any:
        self.mp.setattr(err_console, "_file", io.StringIO())
        r = self.runner.invoke(root, ["--home", str(self.home), *args], input=input)
        if ok:
            assert r.exit_code == 0, (args, r.stdout, r.exception)
        return r


def _pkg(tmp: Path, name: str, **kw: Any) -> Path:
    folder = write_folder(tmp / f"src-{name}", app_files(settings=SECRET_SETTINGS, **kw))
    _, data = package_folder(folder)
    out = tmp / f"{name}.zip"
    out.write_bytes(data)
    return out


def _records(run: Run) -> list[dict[str, Any]]:
    r = run("audit", "tail", "--json", "-n", "1000")
    return [e["record"] for e in json.loads(r.stdout)]


def test_every_operator_command_is_a_record_in_the_verified_chain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = Run(tmp_path / "home", monkeypatch)
    g = ["--grant", "livechat.read", "--grant", "users.create"]
    run("init")
    extra = tmp_path / "extra.toml"
    extra.write_text('schema = 1\nname = "extra"\n[[rule]]\nid = "r"\neffect = "permit"\n'
                     'apps = ["agent-sync"]\nactions = ["livechat.read"]\n')
    run("policy", "add", str(extra))
    run("keys", "generate", str(tmp_path / "pub.key"))
    run("keys", "trust", str(tmp_path / "pub.key.pub"), "--name", "acme")
    run("app", "install", str(_pkg(tmp_path, "v1")), "--allow-unsigned", *g)
    run("app", "settings", "agent-sync", "crm_token=-", "batch=5", input=f"{SECRET}\n")
    run("app", "disable", "agent-sync")
    run("app", "enable", "agent-sync")
    # narrower: applied at once; wider: parked, then rejected
    run("app", "update", "agent-sync", str(_pkg(tmp_path, "v2", version="1.1.0",
                                                 permissions=["livechat.read"])),
        "--allow-unsigned")
    wide = _pkg(tmp_path, "v3", version="1.2.0", permissions=["livechat.read", "users.create"])
    assert run("app", "update", "agent-sync", str(wide), "--allow-unsigned",
               ok=False).exit_code == 1
    run("app", "consent", "agent-sync", "--reject", "--yes")
    old = json.loads(run("keys", "host-list", "--json").stdout)["keys"][0]["kid"]
    run("keys", "host-rotate")
    run("app", "consent", "agent-sync", "--grant", "livechat.read")  # re-signed by the new key
    run("keys", "host-retire", old)
    run("keys", "untrust", "acme")
    run("app", "uninstall", "agent-sync", "--users", "keep", "--yes")

    v = json.loads(run("audit", "verify", "--json").stdout)
    assert v["ok"], v
    recs = _records(run)
    ops = [r for r in recs if r["kind"].startswith("operator.") and r["kind"] != "operator.outcome"]
    kinds = [r["kind"] for r in ops]
    for kind in ("init", "policy_add", "key_generate", "trust", "install", "settings", "disable", "enable", "update",
                 "update_pending", "consent_reject", "key_rotate", "consent", "key_retire",
                 "untrust", "uninstall"):
        assert f"operator.{kind}" in kinds, (kind, kinds)
    assert all(r["actor"] == ME for r in ops)
    by = {r["kind"]: r for r in ops}
    assert by["operator.install"]["grants"] == ["livechat.read", "users.create"]
    assert by["operator.settings"]["setting_keys"] == ["batch", "crm_token"]
    assert by["operator.consent"]["grants"] == ["livechat.read"]
    assert by["operator.key_retire"]["kid"] == old
    # every change has its outcome: ok for the ones that went through
    outcomes = {r["ref_seq"]: r for r in recs if r["kind"] == "operator.outcome"}
    seqs = {json.dumps(r, sort_keys=True): None for r in ops}
    assert len(outcomes) >= len(seqs)
    assert all(o["ok"] for o in outcomes.values())
    rotate_out = [o for o in outcomes.values() if o.get("kid") and o["kid"] != old]
    assert rotate_out, "the rotation's outcome names the new key"
    # the value of a setting (a secret) is nowhere in the chain, only its key
    with sqlite3.connect(run.home / "host.db") as c:
        bodies = "\n".join(b for (b,) in c.execute("SELECT body FROM audit"))
    assert SECRET not in bodies and "crm_token" in bodies


def test_a_change_whose_record_cannot_be_written_is_not_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = Run(tmp_path / "home", monkeypatch)
    run("app", "install", str(_pkg(tmp_path, "v1")), "--allow-unsigned",
        "--grant", "livechat.read")
    # The audit table refuses every new row (a stand-in for a log that cannot be written);
    # the install tables stay writable, so only the audit can stop the disable.
    AuditLog(run.home / "host.db", SystemClock()).close()  # the table exists either way
    with sqlite3.connect(run.home / "host.db") as c:
        c.execute("CREATE TRIGGER no_audit BEFORE INSERT ON audit "
                  "BEGIN SELECT RAISE(ABORT, 'audit log unwritable'); END")
    before = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    env = {**os.environ, "STOCKADE_HOME": str(run.home)}
    for args in (["app", "disable", "agent-sync"], ["app", "settings", "agent-sync", "batch=7"],
                 ["keys", "host-rotate"], ["app", "uninstall", "agent-sync", "--users", "keep", "--yes"]):
        p = subprocess.run([sys.executable, "-c", "from host.cli.main import main; main()",
                            *args], env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, (args, p.stderr)
        assert "audit record could not be written" in p.stderr and "Traceback" not in p.stderr
    after = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert after["enabled"] and after["generation"] == before["generation"]
    assert after["settings"]["batch"] == before["settings"]["batch"]
    keys = json.loads(run("keys", "host-list", "--json").stdout)["keys"]
    assert len(keys) == 1, "no key was rotated without its record"
