"""`stockade demo`'s command line, with the demo itself stubbed out."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from host.cli.main import normalize_argv, root
from host.demo import scenario
from host.demo.narrate import DemoResult

UNREACHABLE = "postgresql://bench@127.0.0.1:1/prod"


def test_the_demo_runs_whatever_store_the_operator_named(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """The demo uses a temporary home of its own: STOCKADE_STORE or a home's store.toml naming
    a store it cannot reach is none of its business (before: refused before it started)."""
    ran: list[dict[str, Any]] = []

    def run_demo(console: Any, **kw: Any) -> DemoResult:
        ran.append(kw)
        return DemoResult(summary={"stubbed": True})

    monkeypatch.setattr(scenario, "run_demo", run_demo)
    home = tmp_path / "home"
    home.mkdir()
    (home / "store.toml").write_text(f'url = "{UNREACHABLE}"\n')
    (home / "store.toml").chmod(0o600)
    for args, env in ((["--home", str(home)], {}),
                      (["--home", str(tmp_path / "none")], {"STOCKADE_STORE": UNREACHABLE})):
        r = CliRunner().invoke(root, normalize_argv([*args, "demo", "--json"]), env=env)
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout) == {"ok": True, "checks": [], "stubbed": True}
    assert len(ran) == 2
