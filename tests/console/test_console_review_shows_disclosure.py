"""An update's review page shows the disclosure the operator approves on, as `app consent`
shows it (review finding: the page showed the diff and the permission table only, so an update
adding roles.assign to an app that creates users was approved with no word of "DANGER D002 can
create user accounts and give them roles", nor the new version's name, author, description or
the events it handles, which the CLI's review and the install page both show)."""
from __future__ import annotations

import html
import re
from pathlib import Path

from apphelp import write_app
from conhelp import SRC, Served, signed_in
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.cli.main import root

DESCRIPTION = "Version two also hands out roles to the users it makes."


def _park_wider(s: Served, tmp_path: Path) -> str:
    folder = write_app(tmp_path / "v2", "agent-sync",
                       ["livechat.read", "users.create", "roles.assign"],
                       ["livechat.room_started"], SRC)
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', 'version = "2.0.0"')
    toml = toml.replace('author = "tests"', f'author = "tests"\ndescription = "{DESCRIPTION}"')
    (folder / "app.toml").write_text(toml)
    r = CliRunner().invoke(root, ["--home", str(s.home.root), "app", "update", "agent-sync",
                                  str(folder), "--allow-unsigned"])
    assert r.exit_code == 1, r.output  # parked: it waits for consent
    with InstallStore(s.home.host_db) as store:
        rec = store.by_app("agent-sync")
    assert rec is not None and rec.pending is not None
    return rec.install_id


def test_the_review_page_shows_the_dangers_and_the_authors_words(served: Served,
                                                                 tmp_path: Path) -> None:
    iid = _park_wider(served, tmp_path)
    cli = CliRunner().invoke(root, ["--home", str(served.home.root), "app", "consent",
                                    "agent-sync", "--dry-run"])
    assert "DANGER D002" in cli.output and "DANGER D004" in cli.output, cli.output
    page = signed_in(served).get(f"/console/updates/{iid}").text
    dangers = re.search(r'<ul id="dangers">(.*?)</ul>', page, re.S)
    assert dangers is not None, "the review page names no danger"
    for code in ("D002", "D004"):
        assert code in dangers.group(1), dangers.group(1)
    about = re.search(r'<table id="about">(.*?)</table>', page, re.S)
    assert about is not None, "the review page shows no name, author or description"
    assert html.escape(DESCRIPTION, quote=False) in about.group(1)
    assert "livechat.room_started" in about.group(1)
