"""A fresh home works: the default policy from the first command, `init`, doctor's policy
check, `policy add` checked first, and a serving host that picks up only a set that loads."""
from __future__ import annotations

import json
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

from host.home import Home
from host.runtime import Host

GOOD = '''schema = 1
name = "extra"
[[rule]]
id = "extra-read"
effect = "permit"
apps = ["greeter"]
actions = ["livechat.read"]
'''


def test_init_creates_home_with_default_policy_and_key(cli: Run, home: Path) -> None:
    r = cli("init")
    assert r.exit_code == 0, r.output
    assert f"initialized {home}" in r.stderr
    assert (home / "policies" / "default.toml").is_file()
    assert (home / "keys" / "keyring.json").is_file()
    again = cli("init", "--json")
    assert again.exit_code == 0
    doc = json.loads(again.stdout)
    assert doc["created"] is False and doc["policies"] == ["default.toml"]
    assert doc["host_key_created"] is False


def test_first_writing_command_writes_default_policy(cli: Run, home: Path,
                                                     tmp_path: Path) -> None:
    r = cli("keys", "host-rotate")
    assert r.exit_code == 0, r.output
    assert (home / "policies" / "default.toml").is_file()


def test_own_policy_file_keeps_the_default(cli: Run, home: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text(GOOD)
    r = cli("policy", "add", str(extra))
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (home / "policies").iterdir()) == ["default.toml", "extra.toml"]
    assert "added" in r.stderr and "revision sha256:" in r.stderr


def test_policy_add_refuses_a_bad_file_and_changes_nothing(cli: Run, home: Path,
                                                           tmp_path: Path) -> None:
    cli("init")
    bad = tmp_path / "bad.toml"
    bad.write_text('schema = 1\nname = "bad"\n[[rule]]\nid = "x"\neffect = "permit"\n'
                   'apps = ["*"]\nactions = ["users.creat"]\n')
    r = cli("policy", "add", str(bad))
    assert r.exit_code == 1, r.output
    assert "nothing changed" in r.stderr and str(bad) in r.stderr
    assert not (home / "policies" / "bad.toml").exists()


def test_policy_add_dry_run_writes_nothing(cli: Run, home: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text(GOOD)
    r = cli("policy", "add", str(extra), "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["dry_run"] is True
    assert not home.exists()


def test_doctor_fails_without_a_policy(cli: Run, home: Path) -> None:
    cli("init")
    (home / "policies" / "default.toml").unlink()
    r = cli("doctor", "--json")
    assert r.exit_code == 1
    check = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "policy")
    assert check["ok"] is False and check["required"] is True
    assert "no policy files" in check["detail"]


def test_doctor_fails_when_the_policy_does_not_load(cli: Run, home: Path) -> None:
    cli("init")
    (home / "policies" / "broken.toml").write_text("x = [")
    r = cli("doctor", "--json")
    assert r.exit_code == 1
    check = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "policy")
    assert check["ok"] is False and "STK002" in check["detail"]


def test_reload_checks_the_folder(cli: Run, home: Path) -> None:
    cli("init")
    ok = cli("policy", "reload")
    assert ok.exit_code == 0 and "load as revision" in ok.stderr
    (home / "policies" / "broken.toml").write_text("x = [")
    bad = cli("policy", "reload")
    assert bad.exit_code == 1 and "keeps deciding with its previous revision" in bad.stderr


def test_serving_host_picks_up_a_good_change_and_never_a_bad_one(cli: Run, home: Path,
                                                                 tmp_path: Path) -> None:
    cli("init")
    host = Host(Home(home))
    try:
        first = host.policy.current().revision
        extra = tmp_path / "extra.toml"
        extra.write_text(GOOD)
        assert cli("policy", "add", str(extra)).exit_code == 0
        host.policy_watch.poll()  # a change is used once it has held still for a poll
        picked = host.policy_watch.poll()
        assert picked.changed and picked.refused is None
        good = host.policy.current().revision
        assert good != first
        assert any(r.id == "extra-read" for r in host.policy.current().rules)
        # Written behind the CLI's back: the host refuses it and keeps the good revision.
        (home / "policies" / "extra.toml").write_text(GOOD + "[[rule]]\nid = 3\n")
        host.policy_watch.poll()  # a change is used once it has held still for a poll
        refused = host.policy_watch.poll()
        assert refused.changed and refused.refused
        assert host.policy.current().revision == good
    finally:
        host.stop()
