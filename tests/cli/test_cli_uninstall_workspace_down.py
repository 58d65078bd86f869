"""`app uninstall` on a home whose Rocket.Chat workspace does not answer (README: a choice that
needs the workspace is refused, naming it, exit 2; keeping users and agents goes ahead). The
users the app created are Stockade's own record, so they are counted; its agents are the
workspace's, and taking them out of routing (the default) needs it: that was an "unexpected
Unavailable ... please report it", exit 1."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from apps_helpers import app_files, write_folder

from host.apps.packages import package_folder
from host.home import Home
from host.server.remote import config as rc_config


def test_uninstall_with_the_workspace_down_is_refused_naming_it(cli: Run, tmp_path: Path,
                                                                home: Path) -> None:
    folder = write_folder(tmp_path / "src", app_files())
    _, data = package_folder(folder)
    pkg = tmp_path / "a.zip"
    pkg.write_bytes(data)
    r = cli("app", "install", str(pkg), "--grant", "livechat.read", "--allow-unsigned")
    assert r.exit_code == 0, r.output
    # Connected to a loopback workspace nothing listens on: every request is refused.
    rc_config.save(Home(home), "http://127.0.0.1:1", "svc", "token")
    r = cli("app", "uninstall", "agent-sync", "--yes")
    assert "unexpected" not in r.stderr, r.stderr
    assert r.exit_code == 2 and "cannot be asked" in r.stderr, r.output
    assert "127.0.0.1:1" in r.stderr and "--agents keep" in r.stderr, r.stderr
    assert json.loads(cli("app", "list", "--json").stdout) != []  # still installed
    r = cli("app", "uninstall", "agent-sync", "--yes", "--users", "keep", "--agents", "keep")
    assert r.exit_code == 0, r.output
    assert json.loads(cli("app", "list", "--json").stdout) == []
