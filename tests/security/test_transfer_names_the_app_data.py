"""An update from another publisher, consented with `--transfer-publisher`, keeps the install:
its private stored records (`persistence.*`, keyed by install id) and the secret settings the
operator typed in for the first publisher's app are read by the new publisher's code. The
operator must be told so before saying yes: before, `app consent` named only "a different
publisher key" and the transfer hint "the users it created", and the data went over unsaid.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from apphelp import settings_toml, write_app
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.apps.packages import package_folder
from host.bridges.persistence import Association, PersistenceStore
from host.cli.main import root
from host.cli.output import err_console
from host.home import Home

SRC = "from stockade import App\n\nclass TestApp(App):\n    pass\n"
PERMS = ["persistence"]


class Cli:
    def __init__(self, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.home, self.mp, self.runner = home, monkeypatch, CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> tuple[int, str]:
        buf = io.StringIO()
        self.mp.setattr(err_console, "_file", buf)
        # wide, so a line the host wraps is still found whole
        self.mp.setattr(err_console, "_width", 400)
        r = self.runner.invoke(root, ["--home", str(self.home), *args], input=input)
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return r.exit_code, r.stderr + buf.getvalue()


def _signed(run: Cli, tmp: Path, name: str, key: str, version: str) -> Path:
    folder = write_app(tmp / name, "crm", PERMS, [], SRC, settings_toml("api_key"))
    toml = folder / "app.toml"
    toml.write_text(toml.read_text().replace('version = "1.0.0"', f'version = "{version}"'))
    out = tmp / f"{name}.zip"
    out.write_bytes(package_folder(folder)[1])
    code, err = run("app", "sign", str(out), "--key", str(tmp / "keys" / key))
    assert code == 0, err
    return out


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    cli = Cli(tmp_path / "home", monkeypatch)
    (tmp_path / "keys").mkdir()
    for name in ("acme", "mallory"):
        assert cli("keys", "generate", str(tmp_path / "keys" / name))[0] == 0
        assert cli("keys", "trust", str(tmp_path / "keys" / f"{name}.pub"),
                   "--name", name)[0] == 0
    return cli


def test_a_transfer_at_consent_names_the_stored_data_and_secrets_it_hands_over(
        run: Cli, tmp_path: Path) -> None:
    code, err = run("app", "install", str(_signed(run, tmp_path, "acme", "acme", "1.0.0")),
                    "--grant", "persistence")
    assert code == 0, err
    code, err = run("app", "settings", "crm", "api_key=-", input="s3cret\n")
    assert code == 0, err
    home = Home(run.home)
    with InstallStore(home.host_store) as installs:
        rec = installs.by_app("crm")
    assert rec is not None
    # Acme's app kept a visitor's details in its private storage.
    data = PersistenceStore(home.host_store)
    data.put(rec.install_id, "visitor:1", {"email": "v@example.org"},
             Association("visitor", "v1"))
    data.put(rec.install_id, "token", "acme-oauth-token")
    code, err = run("app", "update", "crm",
                    str(_signed(run, tmp_path, "mallory", "mallory", "1.1.0")))
    assert code == 1, err  # pending: another publisher's package waits for consent
    # Asked without the transfer: refused, and the hint says what a transfer would hand over.
    code, err = run("app", "consent", "crm", "--grant", "persistence")
    assert code == 1 and "different app" in err, err
    assert "2 stored item(s)" in err and "api_key" in err, err
    code, err = run("app", "consent", "crm", "--grant", "persistence", "--transfer-publisher")
    assert code == 0, err
    # What moved is said at the consent, before the new publisher's code runs with it ...
    assert "2 stored item(s)" in err and "api_key" in err, err
    # ... and it did move: the same install, its records and secret kept.
    with InstallStore(home.host_store) as installs:
        after = installs.by_app("crm")
    assert after is not None and after.install_id == rec.install_id
    assert after.version == "1.1.0"
    assert data.get(rec.install_id, "token") == "acme-oauth-token"
    data.close()
