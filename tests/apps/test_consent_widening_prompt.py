"""A pending update's widenings that no permission question covers get a yes of their own.

`stockade app consent` asks about each new permission of a pending update. When the update
asked for none, a widening of another kind (wider declared roles, a new event, a new secret, a
downgrade, the app user made an agent) needed "Approve the wider powers shown above?"; when it
also asked for a new permission, only the permission questions were put, so an operator who
answered no to every one of them ("Proceed granting nothing new?" yes) still approved the wider
roles: the update applied with them.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from host.cli import app_cmd, app_consent_cmd
from host.cli.main import root

BASE = ("users.create", "messages.read")


def _folder(tmp: Path, name: str, version: str, roles: str, extra: tuple[str, ...]) -> Path:
    d = tmp / name
    d.mkdir()
    perms = "".join(f'\n[[permission]]\nname = "{p}"\nreason = "the tests need {p}"\n'
                    + (f"roles = {roles}\n" if p == "users.create" else "")
                    for p in (*BASE, *extra))
    (d / "app.toml").write_text(textwrap.dedent(f'''\
        id = "wide"
        name = "Wide"
        version = "{version}"
        author = "tests"
        api = ">=1,<2"
        entry = "main:TestApp"
        ''') + perms)
    (d / "main.py").write_text("from stockade import App\n\nclass TestApp(App):\n    pass\n")
    return d


@pytest.fixture
def interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    """A person at a terminal (the prompts read CliRunner's input)."""
    monkeypatch.setattr(app_cmd, "is_interactive", lambda: True)
    monkeypatch.setattr(app_consent_cmd, "is_interactive", lambda: True)


def _pending(tmp_path: Path) -> tuple[CliRunner, list[str]]:
    cli = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    grants = [a for p in BASE for a in ("--grant", p)]
    r = cli.invoke(root, [*home, "app", "install", "--allow-unsigned", *grants,
                          str(_folder(tmp_path, "v1", "1.0.0", '["bot"]', ()))])
    assert r.exit_code == 0, r.stderr
    # Version 2 asks for http AND widens the roles it may give on users.create.
    r = cli.invoke(root, [*home, "app", "update", "wide", "--allow-unsigned",
                          str(_folder(tmp_path, "v2", "1.1.0", '["bot", "livechat-agent"]',
                                      ("http",)))])
    assert r.exit_code == 1 and "PENDING" in r.stderr, r.stderr
    return cli, home


def _version(cli: CliRunner, home: list[str]) -> str:
    import json

    r = cli.invoke(root, [*home, "app", "info", "wide", "--json"])
    return str(json.loads(r.stdout)["version"])


def test_declining_every_new_permission_does_not_approve_wider_roles(
        tmp_path: Path, interactive: None) -> None:
    cli, home = _pending(tmp_path)
    # Before the fix the questions were: grant all? n; grant http? n; proceed? y (applied,
    # with livechat-agent now assignable). Now the wider roles are asked about first: n.
    r = cli.invoke(root, [*home, "app", "consent", "wide"], input="n\nn\ny\n")
    assert r.exit_code == 1, r.stderr
    assert "Approve the wider powers shown above?" in r.stderr
    assert _version(cli, home) == "1.0.0"


def test_approving_the_wider_roles_then_declining_the_new_permission_applies(
        tmp_path: Path, interactive: None) -> None:
    cli, home = _pending(tmp_path)
    r = cli.invoke(root, [*home, "app", "consent", "wide"], input="y\nn\nn\ny\n")
    assert r.exit_code == 0, r.stderr
    assert _version(cli, home) == "1.1.0"
