"""An update cannot widen without consent (issue 19, DESIGN rules 7 and 11).

Updates used to apply at once unless they asked for a new permission: a version 2 that widened
its declared roles (or dropped the list, which means "any role"), added the `message.pre_send`
event (a hook on every human agent's messages), added a secret setting, or went back to an
older version applied with no consent step. Each case here is a real `stockade app update`:
the update must wait for consent with the widening named in its diff, and the old version must
keep running with its grants.
"""
from __future__ import annotations

import json
import sqlite3
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from host.apps.appdiff import version_key
from host.cli.main import root

PERMS = ("users.create", "messages.read", "messages.send")


def _folder(tmp: Path, name: str, *, version: str = "1.1.0", roles: str | None = '["bot"]',
            events: tuple[str, ...] = ("message.sent",), secret: bool = False) -> Path:
    d = tmp / name
    d.mkdir(parents=True)
    roles_line = f"roles = {roles}\n" if roles is not None else ""
    text = textwrap.dedent(f'''\
        id = "widener"
        name = "Widener"
        version = "{version}"
        author = "tests"
        api = ">=1,<2"
        entry = "main:TestApp"
        events = {json.dumps(list(events))}

        [[permission]]
        name = "users.create"
        reason = "creates bot users for the bridge"
        ''') + roles_line + textwrap.dedent('''
        [[permission]]
        name = "messages.read"
        reason = "reads messages to answer them"

        [[permission]]
        name = "messages.send"
        reason = "sends answers into rooms"
        ''')
    if secret:
        text += textwrap.dedent('''
            [[setting]]
            key = "api_token"
            type = "secret"
            label = "API token"
            ''')
    (d / "app.toml").write_text(text)
    (d / "main.py").write_text("from stockade import App\n\nclass TestApp(App):\n    pass\n")
    return d


CASES = {
    "roles-widened": (dict(roles='["bot", "livechat-agent"]'), "roles_widened"),
    "roles-dropped": (dict(roles=None), "roles_widened"),
    "pre-send-added": (dict(events=("message.sent", "message.pre_send")), "events_added"),
    "secret-added": (dict(secret=True), "secrets_added"),
    "downgrade": (dict(version="1.0.9"), "downgrade"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_widening_update_waits_for_consent(tmp_path: Path, case: str) -> None:
    home = tmp_path / "home"
    cli = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        r = cli.invoke(root, ["--home", str(home), *args])
        return r.exit_code, r.stdout, r.stderr

    grants = [a for p in PERMS for a in ("--grant", p)]
    code, _out, err = run("app", "install", str(_folder(tmp_path, "v1")), "--allow-unsigned",
                          *grants)
    assert code == 0, err
    change, field = CASES[case]
    code, out, err = run("app", "update", "widener", str(_folder(tmp_path, "v2", **change)),
                         "--allow-unsigned", "--json")
    assert code == 1, (out, err)
    doc = json.loads(out)
    assert doc["status"] == "pending" and doc["diff"]["needs_consent"]
    assert doc["diff"][field], doc["diff"]
    code, out, _ = run("app", "info", "widener", "--json")
    info = json.loads(out)
    assert info["version"] == "1.1.0" and info["events"] == ["message.sent"]
    assert sorted(info["grants"]) == sorted(PERMS)
    assert info["pending_update"]["version"] == str(change.get("version", "1.1.0"))
    # `app consent` with no grant named and no person to ask applies nothing (exit 3).
    code, _out, err = run("app", "consent", "widener")
    assert code == 3, err
    assert json.loads(run("app", "info", "widener", "--json")[1])["version"] == "1.1.0"
    # The operator then consents to exactly that widening, and it applies.
    code, out, err = run("app", "consent", "widener", "--json", *grants)
    assert code == 0, err
    assert json.loads(out)["install"]["pending_update"] is None


def test_an_update_that_widens_nothing_still_applies_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli = CliRunner()
    grants = [a for p in PERMS for a in ("--grant", p)]
    r = cli.invoke(root, ["--home", str(home), "app", "install", str(_folder(tmp_path, "v1")),
                          "--allow-unsigned", *grants])
    assert r.exit_code == 0, r.stderr
    # Narrower: fewer roles and no event; a newer version.
    v2 = _folder(tmp_path, "v2", version="1.2.0", roles="[]", events=())
    r = cli.invoke(root, ["--home", str(home), "app", "update", "widener", str(v2),
                          "--allow-unsigned", "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "applied"


@pytest.mark.parametrize(("older", "newer"), [
    ("1.9.0", "1.10.0"), ("1.0.0-rc1", "1.0.0"), ("0.9.9", "1.0.0"), ("2.0.0", "2.0.1"),
    # Pre-release identifiers as semantic versioning orders them: numbers as numbers (text
    # order would let rc.10 -> rc.9 pass as an upgrade), a number below a word, fewer below more.
    ("1.0.0-rc.9", "1.0.0-rc.10"), ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
    ("1.0.0-alpha", "1.0.0-alpha.1"), ("1.0.0-beta.11", "1.0.0-rc.1"),
])
def test_version_order_tells_a_downgrade(older: str, newer: str) -> None:
    # Text order would call 1.10.0 older than 1.9.0 and let a real downgrade pass as an upgrade.
    assert version_key(older) < version_key(newer)


def _cli(home: Path) -> Callable[..., tuple[int, str, str]]:
    cli = CliRunner()

    def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
        r = cli.invoke(root, ["--home", str(home), *args], input=input)
        return r.exit_code, r.stdout, r.stderr
    return run


def test_an_update_carries_the_signed_grants_never_the_rows(tmp_path: Path) -> None:
    """Grants widened in the store behind the host's back (the row no longer verifies) must
    not come out of a routine update freshly signed: the update carries what the operator's
    signed consent granted, here nothing."""
    run = _cli(tmp_path / "home")
    code, _, err = run("app", "install", str(_folder(tmp_path, "v1")), "--allow-unsigned",
                       "--grant", "messages.read")
    assert code == 0, err
    with sqlite3.connect(tmp_path / "home" / "host.db") as c:
        c.execute("UPDATE install_installs SET grants = ? WHERE app_id = 'widener'",
                  (json.dumps(sorted(PERMS)),))
    code, out, err = run("app", "update", "widener",
                         str(_folder(tmp_path, "v2", version="1.2.0")), "--allow-unsigned",
                         "--json")
    assert code == 0 and json.loads(out)["status"] == "applied", err
    info = json.loads(run("app", "info", "widener", "--json")[1])
    assert info["grants"] == [] and info["consent_ok"], info


def test_a_secret_a_new_version_calls_plain_is_not_kept(tmp_path: Path) -> None:
    """A version that turns a secret setting into a plain one does not get the secret the
    operator gave, which it would then show in clear in `app info` and `app settings`."""
    run = _cli(tmp_path / "home")
    grants = [a for p in PERMS for a in ("--grant", p)]
    assert run("app", "install", str(_folder(tmp_path, "v1", secret=True)), "--allow-unsigned",
               *grants)[0] == 0
    assert run("app", "settings", "widener", "api_token=-", input="s3cr3t-VALUE\n")[0] == 0
    v2 = _folder(tmp_path, "v2", version="1.2.0", secret=True)
    toml = v2 / "app.toml"
    toml.write_text(toml.read_text().replace('type = "secret"', 'type = "string"'))
    code, out, err = run("app", "update", "widener", str(v2), "--allow-unsigned", "--json")
    assert code == 0 and json.loads(out)["status"] == "applied", err
    shown = run("app", "info", "widener", "--json")[1] + run("app", "settings", "widener")[1]
    assert "s3cr3t-VALUE" not in shown
