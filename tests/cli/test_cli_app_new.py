"""`stockade app new`: where it writes, what it refuses, and that it never leaves half an app."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

from host.apps.scaffold import ScaffoldError, scaffold


def test_dir_dot_puts_the_rule_beside_the_folder(cli: Run, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "dotapp"
    folder.mkdir()
    monkeypatch.chdir(folder)
    r = cli("app", "new", "dotapp", "--dir", ".")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "dotapp.policy.toml").is_file()
    assert sorted(p.name for p in folder.iterdir()) == ["app.toml", "main.py", "tests"]
    # ... so the folder packages (a package may hold no .toml policy).
    monkeypatch.chdir(tmp_path)
    assert cli("app", "package", "dotapp").exit_code == 0


def test_a_dir_naming_a_file_is_bad_input(cli: Run, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = cli("app", "new", "fileapp", "--dir", str(afile))
    assert r.exit_code == 2, r.output
    assert "is not a folder" in r.stderr and "unexpected" not in r.stderr
    assert not (tmp_path / "fileapp.policy.toml").exists()
    r = cli("app", "new", "fileapp", "--dir", str(afile / "below"))
    assert r.exit_code == 2 and "is not a folder" in r.stderr, r.output


def test_a_symlink_at_the_rule_is_refused_before_anything_is_written(cli: Run,
                                                                     tmp_path: Path) -> None:
    os.symlink(tmp_path / "nowhere" / "x.toml", tmp_path / "halfapp.policy.toml")
    r = cli("app", "new", "halfapp", "--dir", str(tmp_path / "halfapp"))
    assert r.exit_code == 2 and "exists" in r.stderr, r.output
    assert not (tmp_path / "halfapp").exists()
    assert not (tmp_path / "nowhere").exists()


def test_a_failed_write_takes_back_what_was_written(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.open

    def refuse_the_rule(path, flags, mode=0o777, **kw):  # type: ignore[no-untyped-def]
        if str(path).endswith(".policy.toml"):
            raise OSError(28, "No space left on device", str(path))
        return real(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", refuse_the_rule)
    with pytest.raises(ScaffoldError, match="No space left"):
        scaffold("halfapp", tmp_path / "halfapp")
    assert list(tmp_path.iterdir()) == []


def test_two_scaffolds_test_in_one_pytest_run(cli: Run, tmp_path: Path) -> None:
    for name in ("alpha", "beta-app"):
        assert cli("app", "new", name, "--dir", str(tmp_path / name)).exit_code == 0
    assert (tmp_path / "beta-app" / "tests" / "test_beta_app.py").is_file()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(tmp_path / "alpha"), str(tmp_path / "beta-app")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "4 passed" in r.stdout, r.stdout[-2000:]
