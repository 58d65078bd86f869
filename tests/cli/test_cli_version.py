"""`stockade --version`: the installed package's version, without a home or a command."""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from typer.testing import CliRunner

from host.cli.main import root


def test_version_prints_the_installed_package_and_reads_no_home(tmp_path: Path) -> None:
    home = tmp_path / "not-made"
    r = CliRunner().invoke(root, ["--version", "--home", str(home)])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"stockade {version('stockade')} (Python ")
    assert not home.exists()
