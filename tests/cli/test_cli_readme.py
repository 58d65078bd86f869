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
