"""Two `policy add` at once: each file loads with the home as it was, together they reuse one
rule id; the second must be checked against the first (review finding: the home's policy set
broken by two concurrent adds, both reported "added")."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import host.cli.policy_home_cmd as policy_home_cmd
from host.cli.main import main

STOCKADE = str(Path(sys.executable).parent / "stockade")
RULE = '''schema = 1
name = "{n}"
[[rule]]
id = "race-read"
effect = "permit"
apps = ["race"]
actions = ["livechat.read"]
description = "lets race read rooms ({n})"
'''


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STOCKADE, *args], capture_output=True, text=True, timeout=120)


def test_a_second_add_landing_between_check_and_copy_is_checked_against_the_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    assert _run("--home", str(home), "init").returncode == 0
    for n in ("x", "y"):
        (tmp_path / f"{n}.toml").write_text(RULE.format(n=n))
    real = policy_home_cmd.audited
    other: list[subprocess.Popen[str]] = []

    def add_meanwhile(*a: Any, **kw: Any) -> Any:
        # The other operator's add starts after this one checked; give it time to finish (it
        # does, without a lock) or to wait for this one's lock.
        proc = subprocess.Popen([STOCKADE, "--home", str(home), "policy", "add",
                                 str(tmp_path / "y.toml")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        other.append(proc)
        deadline = time.monotonic() + 3
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return real(*a, **kw)

    monkeypatch.setattr(policy_home_cmd, "audited", add_meanwhile)
    monkeypatch.setattr(sys, "argv", ["stockade", "--home", str(home), "policy", "add",
                                      str(tmp_path / "x.toml")])
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as ours:
            main()
    finally:
        signal.signal(signal.SIGINT, sigint)
    _out, err = other[0].communicate(timeout=120)
    codes = sorted([int(ours.value.code or 0), other[0].returncode])
    assert codes == [0, 1], (codes, err)
    reload = _run("--home", str(home), "policy", "reload")
    assert reload.returncode == 0, reload.stderr
    names = sorted(p.name for p in (home / "policies").glob("*.toml"))
    assert names in (["default.toml", "x.toml"], ["default.toml", "y.toml"])
