"""End-to-end `stockade app` / `stockade keys` through the CLI: signatures, consent, tampering,
updates, secrets, exit codes and --json purity."""
from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest
from apps_helpers import SECRET_SETTINGS, app_files, write_folder
from typer.testing import CliRunner

from host.apps.packages import package_folder
from host.cli.main import root
from host.cli.output import err_console
from host.ledger.audit import AuditRecord, chain_hash

ALL = ("livechat.read", "users.create")


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr
        self.output = stdout + stderr


@pytest.fixture
def env(tmp_path: Path, monkeypatch):
    home = tmp_path / "home"
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        # err_console captured sys.stderr at import time: point it at a buffer per run.
        buf = io.StringIO()
        monkeypatch.setattr(err_console, "_file", buf)  # restored to None: live stderr
        r = runner.invoke(root, ["--home", str(home), *args], input=input)
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return Result(r.exit_code, r.stdout, r.stderr + buf.getvalue())

    return home, run


def make_pkg(tmp_path: Path, name: str = "a", **kw) -> Path:
    folder = write_folder(tmp_path / f"src-{name}", app_files(**kw))
    _, data = package_folder(folder)
    out = tmp_path / f"{name}.zip"
    out.write_bytes(data)
    return out


def grants(*perms: str) -> list[str]:
    return [x for p in perms for x in ("--grant", p)]


def install(run, pkg: Path, *perms: str):
    return run("app", "install", str(pkg), "--allow-unsigned", "--json", *grants(*perms))


def test_unsigned_refused_without_flag_and_leaves_no_trace(env, tmp_path):
    home, run = env
    r = run("app", "install", str(make_pkg(tmp_path)), *grants(*ALL))
    assert r.exit_code == 3, r.output
    assert "unsigned" in r.stderr.lower()
    assert not home.exists()


def test_non_interactive_without_grant_exits_3(env, tmp_path):
    home, run = env
    r = run("app", "install", str(make_pkg(tmp_path)), "--allow-unsigned")
    assert r.exit_code == 3
    assert "--grant livechat.read --grant users.create" in r.stderr
    assert not (home / "host.db").exists()


def test_grant_not_asked_is_an_error(env, tmp_path):
    _, run = env
    r = run("app", "install", str(make_pkg(tmp_path)), "--allow-unsigned",
            *grants("livechat.read", "roles.assign"))
    assert r.exit_code == 2
    assert "roles.assign" in r.stderr


def test_subset_grant_stored_and_json_pure(env, tmp_path):
    _, run = env
    r = install(run, make_pkg(tmp_path), "livechat.read")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)  # stdout is exactly one JSON document
    assert doc["install"]["grants"] == ["livechat.read"]
    assert doc["install"]["denied"] == ["users.create"]
    info = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert info["grants"] == ["livechat.read"] and info["consent_ok"] is True
    # a second install of the same app id is refused
    assert install(run, make_pkg(tmp_path, "b"), "livechat.read").exit_code == 2


def test_bad_package_cli_exit_2_no_trace(env, tmp_path):
    home, run = env
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"nope")
    r = run("app", "install", str(bad), "--allow-unsigned", "--json")
    assert r.exit_code == 2 and r.stdout == ""
    assert "error:" in r.stderr and not home.exists()


def test_signatures(env, tmp_path):
    _home, run = env
    keys = tmp_path / "keys"
    keys.mkdir()
    assert run("keys", "generate", str(keys / "pub")).exit_code == 0
    assert run("keys", "generate", str(keys / "other")).exit_code == 0
    pkg = make_pkg(tmp_path)
    assert run("app", "sign", str(pkg), "--key", str(keys / "pub")).exit_code == 0
    # signed by a key the operator does not trust: unknown publisher, needs the flag
    r = run("app", "install", str(pkg), *grants(*ALL))
    assert r.exit_code == 3 and "unknown key" in r.stderr
    assert run("keys", "trust", str(keys / "pub.pub"), "--name", "acme").exit_code == 0
    listed = json.loads(run("keys", "list", "--json").stdout)
    assert [k["name"] for k in listed] == ["acme"]
    # tampered content after signing: refused even with --allow-unsigned
    import io
    import zipfile
    with zipfile.ZipFile(pkg) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["main.py"] += b"\n# evil\n"
    # rewrite the recorded hash too, so only the signature can catch it
    from host.apps.packages import build_zip, package_from_files
    files = {n: b for n, b in members.items() if n != "SIGNATURE"}
    repacked = package_from_files({**files, "app.toml": b"\n".join(
        ln for ln in files["app.toml"].split(b"\n") if not ln.startswith(b"content_hash"))},
        signature=members["SIGNATURE"])
    evil = tmp_path / "evil.zip"
    evil.write_bytes(build_zip(repacked))
    r = run("app", "install", str(evil), "--allow-unsigned", *grants(*ALL))
    assert r.exit_code == 1 and "changed after signing" in r.stderr
    # a signature by another key claiming the trusted kid does not verify
    other = tmp_path / "forged.zip"
    other.write_bytes(pkg.read_bytes())
    assert run("app", "sign", str(other), "--key", str(keys / "other")).exit_code == 0
    with zipfile.ZipFile(other) as zf:
        fm = {n: zf.read(n) for n in zf.namelist()}
    sig = json.loads(fm["SIGNATURE"])
    sig["kid"] = listed[0]["kid"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, b in fm.items():
            zf.writestr(n, json.dumps(sig).encode() if n == "SIGNATURE" else b)
    other.write_bytes(buf.getvalue())
    r = run("app", "install", str(other), "--allow-unsigned", *grants(*ALL))
    assert r.exit_code == 1 and "does not verify" in r.stderr
    # host.db exists (`keys trust` is an audited operator act, rule 14), but nothing installed
    assert json.loads(run("app", "list", "--json").stdout) == []
    # valid, trusted: installs without the flag
    r = run("app", "install", str(pkg), "--json", *grants(*ALL))
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["install"]["publisher"]["status"] == "trusted"
    assert run("keys", "untrust", "acme").exit_code == 0
    assert run("keys", "untrust", "acme").exit_code == 2


def test_raw_sql_grant_tamper_detected_and_disables(env, tmp_path):
    home, run = env
    assert install(run, make_pkg(tmp_path), "livechat.read").exit_code == 0
    with sqlite3.connect(home / "host.db") as c:
        c.execute("UPDATE install_installs SET grants = ? WHERE app_id = 'agent-sync'",
                  (json.dumps(["livechat.read", "users.create"]),))
    r = run("app", "info", "agent-sync", "--json")
    doc = json.loads(r.stdout)
    assert doc["consent_ok"] is False and "grants" in doc["consent_problem"]
    assert doc["enabled"] is False and doc["generation"] == 2
    r = run("app", "enable", "agent-sync")
    assert r.exit_code == 1 and "consent" in r.stderr
    # the operator re-confirms: a fresh signed record; then enable works
    assert run("app", "consent", "agent-sync", *grants("livechat.read")).exit_code == 0
    assert run("app", "enable", "agent-sync").exit_code == 0
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["enabled"] and doc["consent_ok"] and doc["grants"] == ["livechat.read"]


def test_tampered_consent_row_detected(env, tmp_path):
    home, run = env
    assert install(run, make_pkg(tmp_path), "livechat.read").exit_code == 0
    with sqlite3.connect(home / "host.db") as c:
        c.execute("UPDATE consent_records SET payload = replace(payload, "
                  "'\"livechat.read\"', '\"livechat.read\",\"users.create\"')")
        c.execute("UPDATE install_installs SET grants = ?",
                  (json.dumps(["livechat.read", "users.create"]),))
    doc = json.loads(run("app", "list", "--json").stdout)[0]
    assert doc["consent_ok"] is False and "signature" in doc["consent_problem"]
    assert doc["enabled"] is False


def test_update_less_applies_more_stays_pending(env, tmp_path):
    _, run = env
    assert install(run, make_pkg(tmp_path, "v1"), *ALL).exit_code == 0
    # asks for less: applies at once, grants shrink, generation bumps
    less = make_pkg(tmp_path, "v2", version="1.1.0", permissions=("livechat.read",))
    r = run("app", "update", "agent-sync", str(less), "--allow-unsigned", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "applied"
    assert doc["install"]["version"] == "1.1.0" and doc["install"]["grants"] == ["livechat.read"]
    assert doc["install"]["generation"] == 2
    # asks for more: pending, old version keeps running with its grants
    more = make_pkg(tmp_path, "v3", version="2.0.0",
                    permissions=("livechat.read", "users.create", "roles.assign"))
    r = run("app", "update", "agent-sync", str(more), "--allow-unsigned", "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["status"] == "pending"
    assert sorted(doc["diff"]["added"]) == ["roles.assign", "users.create"]
    assert "roles.assign" in r.stderr and "admin-class" in r.stderr
    info = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert info["version"] == "1.1.0" and info["grants"] == ["livechat.read"]
    assert info["pending_update"]["version"] == "2.0.0"
    # consent without --grant and no TTY: exit 3; a grant outside the new asks: exit 2
    assert run("app", "consent", "agent-sync").exit_code == 3
    assert run("app", "consent", "agent-sync", *grants("messages.send")).exit_code == 2
    r = run("app", "consent", "agent-sync", "--json", *grants("users.create"))
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)["install"]
    assert doc["version"] == "2.0.0" and doc["grants"] == ["livechat.read", "users.create"]
    assert doc["pending_update"] is None and doc["denied"] == ["roles.assign"]


def test_an_update_applied_at_once_says_it_drops_the_pending_one(env, tmp_path):
    """An update that widens nothing applies at once and replaces one waiting for consent:
    before, the waiting one vanished unsaid, on the screen and in the chain."""
    home, run = env
    assert install(run, make_pkg(tmp_path, "v1"), "livechat.read").exit_code == 0
    more = make_pkg(tmp_path, "v2", version="2.0.0",
                    permissions=("livechat.read", "users.create", "http"))
    assert run("app", "update", "agent-sync", str(more), "--allow-unsigned").exit_code == 1
    same = make_pkg(tmp_path, "v3", version="1.0.1", permissions=("livechat.read",))
    r = run("app", "update", "agent-sync", str(same), "--allow-unsigned", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "applied" and doc["dropped_pending"] == "2.0.0"
    assert doc["install"]["pending_update"] is None
    assert "dropped the update to 2.0.0 that was waiting for consent" in " ".join(r.stderr.split())
    with sqlite3.connect(home / "host.db") as db:
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM audit ORDER BY seq")]
    details = [b.get("detail") or "" for b in bodies if b["kind"] == "operator.update"]
    assert any("the pending 2.0.0 (waiting for consent) is dropped" in d for d in details), details
    # Nothing waited: nothing is said.
    again = make_pkg(tmp_path, "v4", version="1.0.2", permissions=("livechat.read",))
    r = run("app", "update", "agent-sync", str(again), "--allow-unsigned", "--json")
    assert json.loads(r.stdout)["dropped_pending"] is None and "dropped" not in r.stderr


def test_reject_pending(env, tmp_path):
    _, run = env
    assert install(run, make_pkg(tmp_path, "v1"), "livechat.read").exit_code == 0
    more = make_pkg(tmp_path, "v2", version="2.0.0",
                    permissions=("livechat.read", "users.create", "http"))
    assert run("app", "update", "agent-sync", str(more), "--allow-unsigned").exit_code == 1
    assert run("app", "consent", "agent-sync", "--reject", "--yes").exit_code == 0
    info = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert info["pending_update"] is None and info["version"] == "1.0.0"


def test_secrets_never_printed(env, tmp_path):
    home, run = env
    pkg = make_pkg(tmp_path, settings=SECRET_SETTINGS)
    assert install(run, pkg, "livechat.read").exit_code == 0
    secret = "s3cr3t-token-value"
    r = run("app", "settings", "agent-sync", "crm_token=-", "batch=25", "--json",
            input=f"{secret}\n")  # a secret comes on stdin, never on the command line
    assert r.exit_code == 0, r.stderr
    assert secret not in r.output
    assert json.loads(r.stdout)["settings"]["batch"] == 25
    assert run("app", "settings", "agent-sync", "batch=many").exit_code == 2
    assert run("app", "settings", "agent-sync", "mode=turbo").exit_code == 2
    assert run("app", "settings", "agent-sync", "nope=1").exit_code == 2
    install_id = json.loads(run("app", "info", "agent-sync", "--json").stdout)["install_id"]
    (home / "logs" / f"{install_id}.log").write_text(f"connecting with {secret}\nok\n")
    for args in (("app", "list", "--json"), ("app", "info", "agent-sync", "--json"),
                 ("app", "list"), ("app", "info", "agent-sync"),
                 ("app", "logs", "agent-sync", "--json"), ("app", "logs", "agent-sync"),
                 ("app", "settings", "agent-sync")):
        r = run(*args)
        assert r.exit_code == 0, (args, r.stderr)
        assert secret not in r.output, args
    logs = json.loads(run("app", "logs", "agent-sync", "--json").stdout)["lines"]
    assert logs[0] == "connecting with ********"
    # the hook detail names the changed keys, never their values
    from host.apps.installs import InstallStore
    with InstallStore(home / "host.db") as store:
        hooks = [(h.hook, h.detail) for h in store.pending_hooks()]
    assert ("settings_changed", {"keys": ["batch", "crm_token"]}) in hooks
    assert secret not in json.dumps(hooks)


def test_disable_enable_uninstall(env, tmp_path):
    home, run = env
    assert install(run, make_pkg(tmp_path), "livechat.read").exit_code == 0
    doc = json.loads(run("app", "disable", "agent-sync", "--json").stdout)
    assert doc["enabled"] is False and doc["generation"] == 2
    doc = json.loads(run("app", "enable", "agent-sync", "--json").stdout)
    assert doc["enabled"] is True
    pkgs = list((home / "packages").iterdir())
    assert len(pkgs) == 1
    # two users the app created (as if through the gate), then uninstall deactivating them
    from host.clock import SystemClock
    from host.server.embedded import EmbeddedServer
    from host.server.principals import Caller
    # The home's server data is in host.db (a server.db made beside it now is refused).
    server = EmbeddedServer(home / "host.db", SystemClock())
    rec = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    caller = Caller("agent-sync", rec["install_id"], rec["app_user_id"])
    made = [server.users_create(caller, f"made-{i}", "M", "bot", op_id=f"op-made-{i}")
            for i in range(2)]
    assert json.loads(run("app", "info", "agent-sync", "--json").stdout)["app_users"] == 2
    r = run("app", "uninstall", "agent-sync", "--users", "deactivate", "--yes", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["users_deactivated"] == 2
    assert not any(server.users_get(caller, u["id"])["active"] for u in made)
    assert json.loads(run("app", "list", "--json").stdout) == []
    assert not any((home / "packages").iterdir())
    assert run("app", "info", "agent-sync").exit_code == 2
    from host.apps.installs import InstallStore
    with InstallStore(home / "host.db") as store:
        assert [h.hook for h in store.pending_hooks()] == [
            "install", "disable", "enable", "uninstall"]


def test_data_version_and_epoch(tmp_path):
    from host.apps.installs import InstallStore
    db = tmp_path / "host.db"
    a, b = InstallStore(db), InstallStore(db)
    v = a.data_version()
    assert b.bump_epoch() == 2
    assert a.data_version() != v and a.epoch() == 2


def test_new_scaffold_packages_and_installs(env, tmp_path):
    _, run = env
    target = tmp_path / "greeter"
    assert run("app", "new", "greeter", "--dir", str(target)).exit_code == 0
    assert run("app", "new", "greeter", "--dir", str(target)).exit_code == 2
    # the scaffold's own tests run through the app-author harness and pass
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(target / "tests")], capture_output=True, text=True)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout[-2000:]
    out = tmp_path / "g.zip"
    assert run("app", "package", str(target), "-o", str(out)).exit_code == 0
    r = run("app", "install", str(out), "--allow-unsigned", "--json",
            *grants("livechat.read", "messages.send"))
    assert r.exit_code == 0, r.stderr


def test_update_shows_policy_forbidden_and_consent_binds_revision(env, tmp_path):
    home, run = env
    (home / "policies").mkdir(parents=True)
    shipped = Path(__file__).resolve().parents[2] / "policies" / "shipped" / "default.toml"
    (home / "policies" / "default.toml").write_text(shipped.read_text())
    assert install(run, make_pkg(tmp_path, "v1"), "livechat.read").exit_code == 0
    more = make_pkg(tmp_path, "v2", version="2.0.0", permissions=("livechat.read", "http"))
    r = run("app", "update", "agent-sync", str(more), "--allow-unsigned")
    assert r.exit_code == 1
    assert "+ http" in r.stderr and "policy does not permit this" in r.stderr
    from host.apps.installs import InstallStore
    with InstallStore(home / "host.db") as store:
        rec = store.by_app("agent-sync")
        payload = json.loads(store.consent(rec.consent_id).payload)
    assert payload["policy_revision"].startswith("sha256:")
    assert payload["package_hash"] == rec.package_hash and payload["grants"] == ["livechat.read"]


def _put_back_first_consent(home: Path, *, delete_later: bool) -> None:
    """Raw SQL on host.db: point the install back at its first (wider, genuinely signed)
    consent, with its grants; optionally delete every later consent row too."""
    with sqlite3.connect(home / "host.db") as c:
        first = c.execute("SELECT consent_id FROM consent_records ORDER BY created_at"
                          " LIMIT 1").fetchone()[0]
        c.execute("UPDATE install_installs SET grants = ?, consent_id = ?"
                  " WHERE app_id = 'agent-sync'", (json.dumps(sorted(ALL)), first))
        if delete_later:
            c.execute("DELETE FROM consent_records WHERE consent_id != ?", (first,))


@pytest.mark.parametrize("delete_later", [False, True], ids=["put-back", "and-delete-later"])
def test_an_older_consent_put_back_is_detected_and_disables(env, tmp_path, delete_later):
    """After a revoke, the install row pointed back at the first consent (and its grants)
    verifies no longer: it is not the install's latest consent, which its signed sequence
    number and the audit chain's record of each consent tell, also when the later consent
    rows are deleted (before the fix: it verified, and users.create was back)."""
    home, run = env
    assert install(run, make_pkg(tmp_path), *ALL).exit_code == 0
    assert run("app", "consent", "agent-sync", "--revoke", "users.create",
               "--yes").exit_code == 0
    _put_back_first_consent(home, delete_later=delete_later)
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["consent_ok"] is False and "latest" in doc["consent_problem"]
    assert doc["enabled"] is False
    # The operator re-confirms what they mean: a consent numbered past every earlier one.
    assert run("app", "consent", "agent-sync", *grants("livechat.read")).exit_code == 0
    assert run("app", "enable", "agent-sync").exit_code == 0
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["enabled"] and doc["consent_ok"] and doc["grants"] == ["livechat.read"]


def test_an_uninstalled_install_put_back_with_its_consent_never_verifies(env, tmp_path):
    """Whoever can write the store (a shared PostgreSQL store's owner) puts an uninstalled
    app's row back, its consent rows kept as history: it does not verify, because the
    uninstall's ok record in the chain names a consent number past every one the install had
    (before the fix: it verified, enabled, with its old grants, and another host still
    holding the package ran it again)."""
    home, run = env
    assert install(run, make_pkg(tmp_path), *ALL).exit_code == 0
    with sqlite3.connect(home / "host.db") as c:
        c.row_factory = sqlite3.Row
        row = dict(c.execute("SELECT * FROM install_installs WHERE app_id = 'agent-sync'")
                   .fetchone())
    packages = {p: p.read_bytes() for p in (home / "packages").rglob("*") if p.is_file()}
    assert run("app", "uninstall", "agent-sync", "--yes", "--users", "keep",
               "--agents", "remove").exit_code == 0
    with sqlite3.connect(home / "host.db") as c:
        assert c.execute("SELECT count(*) FROM consent_records").fetchone()[0] >= 1
        c.execute(f"INSERT INTO install_installs ({', '.join(row)}) "
                  f"VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
    for path, data in packages.items():  # as another host still holds it
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["consent_ok"] is False and "latest" in doc["consent_problem"]
    assert doc["enabled"] is False


def test_a_disabled_app_enabled_again_behind_the_operator_is_disabled(env, tmp_path):
    """`enabled` is not in the signed consent: whoever can write the store could undo the
    operator's disable by flipping it back. The chain records each enable and disable, so the
    host reads the install's last one, and an enabled row whose last switch is a disable is
    refused as tampered (before the fix: it verified and ran). The operator's own enable
    afterwards works as ever."""
    home, run = env
    assert install(run, make_pkg(tmp_path), *ALL).exit_code == 0
    assert run("app", "disable", "agent-sync").exit_code == 0
    with sqlite3.connect(home / "host.db") as c:
        c.execute("UPDATE install_installs SET enabled = 1, disabled_reason = NULL"
                  " WHERE app_id = 'agent-sync'")
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["consent_ok"] is False and "disabled" in doc["consent_problem"]
    assert doc["enabled"] is False
    assert run("app", "enable", "agent-sync").exit_code == 0
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["enabled"] is True and doc["consent_ok"] is True


def test_a_forged_row_naming_the_install_stops_no_consent_check(env, tmp_path):
    """A row in the audit table that the consent lookup's filter matches but that is no record
    (a body nested past the parser's stack) is no witness: it made every consent check of the
    install fail with an unexpected RecursionError."""
    body = '{"actor":' + "[" * 100_000 + '"install_id":"%s"'
    home, run = env
    assert install(run, make_pkg(tmp_path), *ALL).exit_code == 0
    iid = json.loads(run("app", "info", "agent-sync", "--json").stdout)["install_id"]
    with sqlite3.connect(home / "host.db") as c:
        seq = c.execute("SELECT max(seq) FROM audit").fetchone()[0]
        c.execute("INSERT INTO audit VALUES(?, ?, ?, ?, ?)",
                  (seq + 1, 1.0, body % iid, "0" * 64, "0" * 64))
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["consent_ok"] is True and doc["enabled"] is True


def _forge_operator_record(db: Path, kind: str, install_id: str, app_id: str) -> None:
    """Append a well-chained `operator.<kind>` record as a store writer without the anchor's
    key would: the hash chain is public arithmetic, the anchor is left where it was."""
    body = AuditRecord(kind=f"operator.{kind}", actor="root", app_id=app_id,
                       install_id=install_id, version="1.0.0").body()
    with sqlite3.connect(db) as c:
        seq, prev = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        ts = float(c.execute("SELECT ts FROM audit WHERE seq = ?", (seq,)).fetchone()[0]) + 1
        c.execute("INSERT INTO audit VALUES(?, ?, ?, ?, ?)",
                  (seq + 1, ts, body, prev, chain_hash(prev, seq + 1, ts, body)))


def test_a_disable_is_not_undone_by_a_forged_enable_record(env, tmp_path):
    """The operator's disable is a signed consent of its own (`host/apps/switches.py`): a store
    writer who flips `enabled` back and appends a well-chained `operator.enable` after the
    anchor (which needs no key) is refused as tampered. Before, the chain's last switch was the
    only witness: the forged record made the re-enabled row verify, and the app ran."""
    home, run = env
    assert install(run, make_pkg(tmp_path), *ALL).exit_code == 0
    assert run("app", "disable", "agent-sync").exit_code == 0
    iid = json.loads(run("app", "info", "agent-sync", "--json").stdout)["install_id"]
    with sqlite3.connect(home / "host.db") as c:
        c.execute("UPDATE install_installs SET enabled = 1, disabled_reason = NULL"
                  " WHERE app_id = 'agent-sync'")
    _forge_operator_record(home / "host.db", "enable", iid, "agent-sync")
    assert run("audit", "verify").exit_code == 0  # the forgery itself is well chained
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["consent_ok"] is False and "disabled" in doc["consent_problem"]
    assert doc["enabled"] is False  # disabled again, as tampered


def test_an_update_never_signs_a_flag_flipped_behind_the_operator(env, tmp_path):
    """A routine update applied before any host noticed the forgery (row flipped, a forged
    `operator.enable` appended) signs the operator's latest switch, the disable, not the row's
    flag: the app stays refused. Signing the flag (or leaving it to the chain's forged record)
    let the update vouch for the re-enable."""
    home, run = env
    assert install(run, make_pkg(tmp_path, "v1"), *ALL).exit_code == 0
    assert run("app", "disable", "agent-sync").exit_code == 0
    iid = json.loads(run("app", "info", "agent-sync", "--json").stdout)["install_id"]
    with sqlite3.connect(home / "host.db") as c:
        c.execute("UPDATE install_installs SET enabled = 1, disabled_reason = NULL")
    _forge_operator_record(home / "host.db", "enable", iid, "agent-sync")
    same = make_pkg(tmp_path, "v2", version="1.0.1")
    r = run("app", "update", "agent-sync", str(same), "--allow-unsigned", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "applied", r.stderr
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["consent_ok"] is False and doc["enabled"] is False, doc


def test_signed_switches_round_trip_and_an_older_consent_put_back_is_stale(env, tmp_path):
    """Enable and disable each sign a consent numbered past the last: the app runs after the
    operator's enable; putting the enable's consent back after a later disable is refused as
    an older consent."""
    home, run = env
    assert install(run, make_pkg(tmp_path), *ALL).exit_code == 0
    assert run("app", "disable", "agent-sync").exit_code == 0
    assert run("app", "enable", "agent-sync").exit_code == 0
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["enabled"] is True and doc["consent_ok"] is True
    with sqlite3.connect(home / "host.db") as c:
        enabled_consent = c.execute("SELECT consent_id FROM install_installs").fetchone()[0]
    assert run("app", "disable", "agent-sync").exit_code == 0
    with sqlite3.connect(home / "host.db") as c:
        kinds = [json.loads(p)["kind"] for (p,) in c.execute(
            "SELECT payload FROM consent_records ORDER BY created_at")]
        c.execute("UPDATE install_installs SET enabled = 1, consent_id = ?",
                  (enabled_consent,))
    assert kinds == ["install", "disable", "enable", "disable"]
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["consent_ok"] is False and "older consent" in doc["consent_problem"]


def test_a_consent_made_before_sequence_numbers_still_verifies(env, tmp_path):
    """A home from before consents were numbered: its consent has no sequence number and
    the audit chain names none. It verifies; once the operator consents again, putting the
    old one back is detected like any older consent."""
    from host.apps.installs import ConsentRow, InstallStore, new_install_id
    from host.apps.manifest import canonical_json
    from host.apps.package_store import store_package
    from host.apps.packages import read_package
    from host.home import Home
    from host.keys.keyring import Keyring

    home, run = env
    h = Home(home).ensure()
    pkg = read_package(make_pkg(tmp_path))
    install_id = new_install_id()
    payload = canonical_json({  # the format as the earlier release signed it
        "format": "stockade-consent-v1", "consent_id": "cs_old", "install_id": install_id,
        "app_id": pkg.app_id, "version": pkg.manifest.version,
        "package_hash": pkg.content_hash, "manifest_hash": pkg.manifest.manifest_hash(),
        "grants": sorted(ALL), "policy_revision": None, "granted_at": 1.0,
        "kind": "install"})
    kid, sig = Keyring.open(h.keys_dir).sign(payload)
    with InstallStore(h.host_store) as store:
        store.create(install_id=install_id, manifest=pkg.manifest,
                     package_hash=pkg.content_hash,
                     package_path=store_package(h.packages_dir, pkg), grants=frozenset(ALL),
                     settings={}, publisher={},
                     consent=ConsentRow("cs_old", install_id, payload, kid, sig, 1.0))
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["consent_ok"] is True and doc["enabled"] is True

    assert run("app", "consent", "agent-sync", "--revoke", "users.create",
               "--yes").exit_code == 0
    _put_back_first_consent(home, delete_later=True)
    doc = json.loads(run("app", "info", "agent-sync", "--json").stdout)
    assert doc["consent_ok"] is False and doc["enabled"] is False
