"""The `cli` fixture (imported by each test module: a second `conftest` module would shadow
tests/server/conftest.py, which tests import by name): run the real `stockade` typer app on a temporary home, capture both
streams (machine output on stdout, everything for people on stderr) and the exit code."""
from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from host.cli.main import root
from host.cli.output import err_console


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr
        self.output = stdout + stderr


Run = Callable[..., Result]


@pytest.fixture(name="home")
def home_fixture(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture(name="cli")
def cli_fixture(home: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    runner = CliRunner()

    def run(*args: str, input: str | None = None, with_home: bool = True) -> Result:
        buf = io.StringIO()
        monkeypatch.setattr(err_console, "_file", buf)
        argv = ["--home", str(home), *args] if with_home else list(args)
        r = runner.invoke(root, argv, input=input)
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return Result(r.exit_code, r.stdout, r.stderr + buf.getvalue())

    return run


def run_main(root_dir: Path, capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    """`stockade --home ROOT_DIR ARGS` as the console script runs it, in this process
    (`host.cli.main._run`, the last net under every error the `cli` fixture leaves raised):
    its exit code and what it wrote to stderr."""
    from host.cli.main import _run

    monkeypatch.setattr(sys, "argv", ["stockade", "--home", str(root_dir), *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        _run()
    code = done.value.code
    return code if isinstance(code, int) else 1, capsys.readouterr().err


def install_with_settings(cli: Run, tmp_path: Path, settings: str) -> None:
    """Install the test app agent-sync (`tests/apps/apps_helpers.py`) declaring `settings`
    (`apphelp.settings_toml`), unsigned, granted livechat.read: the rig of the settings tests."""
    apps_tests = str(Path(__file__).resolve().parents[1] / "apps")
    if apps_tests not in sys.path:
        sys.path.insert(0, apps_tests)
    from apps_helpers import app_files, write_folder

    from host.apps.packages import package_folder

    folder = write_folder(tmp_path / "src", app_files(settings=settings))
    _, data = package_folder(folder)
    pkg = tmp_path / "a.zip"
    pkg.write_bytes(data)
    r = cli("app", "install", str(pkg), "--grant", "livechat.read", "--allow-unsigned")
    assert r.exit_code == 0, r.output


def stored_settings(home: Path, app_id: str = "agent-sync") -> dict[str, object]:
    """The settings the home's install record of `app_id` holds (what the CLI stored)."""
    from host.apps.installs import InstallStore
    from host.home import Home

    with InstallStore(Home(home).host_store) as store:
        rec = store.by_app(app_id)
        assert rec is not None
        return dict(rec.settings)
