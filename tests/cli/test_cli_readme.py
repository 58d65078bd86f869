"""The README's "Writing an app" steps work verbatim on a fresh home (issue 20)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _block(heading: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    body = re.search(r"```\n(.*?)```", section, re.S)
    assert body is not None
    return [line.split("  #")[0].strip() for line in body.group(1).splitlines() if line.strip()]


def test_writing_an_app_steps_work_verbatim(tmp_path: Path) -> None:
    env = {**os.environ, "STOCKADE_HOME": str(tmp_path / "home"),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    steps = _block("Writing an app")
    assert steps[0] == "stockade init" and any("app install" in s for s in steps)
    for line in steps:
        argv = shlex.split(line)
        if argv[0] == "python":
            argv[0] = sys.executable
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, f"{line}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr, line
        if "app install" in line:
            # The scaffolded operator rule is in force: the disclosure names it.
            assert "greeter-livechat" in r.stderr and "No policy loaded" not in r.stderr
    # The installed app is permitted by policy what it was granted: no "no policy" warning and
    # the disclosure names the operator's rule.
    info = subprocess.run([str(BIN / "stockade"), "app", "info", "greeter", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert info.returncode == 0 and '"greeter"' in info.stdout


def _readme_commands() -> list[tuple[list[list[str]], list[str]]]:
    """Each `stockade ...` span of the README: the command paths it names (alternatives
    `a|b` expanded) and the flags it shows."""
    out = []
    for span in re.findall(r"`stockade ([^`]*)`", (REPO / "README.md").read_text()):
        words = span.split()
        path: list[str] = []
        for w in words:
            if not re.fullmatch(r"[a-z][a-z|-]*", w):
                break
            path.append(w)
        alternatives = [[*path[:-1], alt] for alt in path[-1].split("|")] if path else [[]]
        flags = [f for f in re.findall(r"--[a-z][a-z-]*", span) if f != "--home"]
        out.append((alternatives, flags))
    return out


def test_every_readme_command_and_flag_exists() -> None:
    """The README's commands and flags are all true: each names a real command whose help
    lists each flag shown with it."""
    from typer.testing import CliRunner

    from host.cli.main import root

    cases = _readme_commands()
    assert len(cases) >= 15
    runner = CliRunner(env={"COLUMNS": "200"})
    for alternatives, flags in cases:
        for path in alternatives:
            r = runner.invoke(root, [*path, "--help"])
            assert r.exit_code == 0, (path, r.output)
            if len(alternatives) == 1:
                for flag in flags:
                    assert flag in r.stdout, (path, flag)


def test_quick_start_shows_progress() -> None:
    """The first Quick start command is not silent while pip works (no -q)."""
    first = _block("Quick start")[0]
    assert "pip install -e ." in first and " -q " not in first
