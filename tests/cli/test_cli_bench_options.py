"""`stockade bench`'s option handling, with the measurements stubbed out: which bench a
command line reaches, and what it refuses before anything is measured."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from host.bench import KEYS
from host.cli import bench_cmd, bench_soak_cmd
from host.cli.main import normalize_argv, root

UNREACHABLE = "postgresql://bench@127.0.0.1:1/prod"


class Reached:
    """What the stubbed benches were asked to measure, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

        def one_run(*args: Any, **kw: Any) -> dict[str, float]:
            self.calls.append(("run", args, kw))
            return {k: 1.0 for k in KEYS}

        def store_command(*args: Any, **kw: Any) -> None:
            self.calls.append(("store", args, kw))

        monkeypatch.setattr(bench_cmd, "_one_run", one_run)
        monkeypatch.setattr(bench_soak_cmd, "store_command", store_command)

    @property
    def names(self) -> list[str]:
        return [name for name, _a, _k in self.calls]


def bench(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(root, normalize_argv(["bench", *args]), env=env)


@pytest.fixture()
def reached(monkeypatch: pytest.MonkeyPatch) -> Reached:
    monkeypatch.delenv("STOCKADE_STORE", raising=False)
    return Reached(monkeypatch)


def test_the_homes_store_does_not_turn_the_bench_into_the_store_bench(
        reached: Reached, tmp_path: Path) -> None:
    """A home with store.toml, or STOCKADE_STORE set: the bench still runs its own figures in
    its own temporary home (it never creates a schema in the operator's database)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "store.toml").write_text(f'url = "{UNREACHABLE}"\n')
    (home / "store.toml").chmod(0o600)
    r = bench("--home", str(home), "--quick", "--json")
    assert r.exit_code == 0, r.output
    assert reached.names == ["run"] and set(json.loads(r.stdout)) == set(KEYS)
    r = bench("--home", str(home), "--quick", "--pairs", "2")
    assert r.exit_code == 0, r.output
    assert reached.names == ["run"] * 3
    reached.calls.clear()
    r = bench("--home", str(tmp_path / "none"), "--quick", env={"STOCKADE_STORE": UNREACHABLE})
    assert r.exit_code == 0, r.output
    assert reached.names == ["run"]


def test_a_typed_store_is_the_store_bench(reached: Reached, tmp_path: Path) -> None:
    r = bench("--home", str(tmp_path / "none"), "--store", UNREACHABLE, "--quick")
    assert r.exit_code == 0, r.output
    assert reached.calls == [("store", (UNREACHABLE, True, False), {})]
    r = bench("--store", UNREACHABLE, "--pairs", "2")
    assert r.exit_code == 2 and "--store measures something else" in r.output
