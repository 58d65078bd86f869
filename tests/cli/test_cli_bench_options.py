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


class Stop(Exception):
    """A stubbed long bench (soak, load) was reached: the test only asks whether."""


class Reached:
    """What the stubbed benches were asked to measure, in order. Every bench is stubbed, so a
    command line that reaches the wrong one measures nothing on this shared machine."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from host.bench import ledgersplit, load, remote, soak, writefloor
        from host.cli import bench_scale_cmd

        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

        def stub(name: str, result: Any) -> Any:
            def measure(*args: Any, **kw: Any) -> Any:
                self.calls.append((name, args, kw))
                if result is Stop:
                    raise Stop(name)
                return result
            return measure

        for module, attr, name, result in (
                (bench_cmd, "_one_run", "run", {k: 1.0 for k in KEYS}),
                (bench_soak_cmd, "store_command", "store", None),
                (bench_scale_cmd, "scale_command", "scale", None),
                (writefloor, "measure_write_floor", "write-floor",
                 {k: 1.0 for k in writefloor.MEANING}),
                (ledgersplit, "measure_ledger_split", "ledger-split",
                 {k: 1.0 for k in ledgersplit.MEANING}),
                (remote, "measure_remote", "rocketchat", {"bridge_users_get_us": 1.0}),
                (load, "run_load", "load", Stop), (soak, "run_soak", "soak", Stop)):
            monkeypatch.setattr(module, attr, stub(name, result))

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


def test_rocketchat_passes_degraded_on(reached: Reached, tmp_path: Path) -> None:
    for flags, degraded in (([], False), (["--degraded"], True)):
        r = bench("--home", str(tmp_path / "none"), "--rocketchat", "--quick", *flags)
        assert r.exit_code == 0, r.output
        ((name, _args, kw),) = reached.calls
        assert name == "rocketchat" and kw.get("degraded", False) is degraded
        reached.calls.clear()


@pytest.mark.parametrize("args", [
    ("--write-floor", "--ledger-split"), ("--scale", "--load"), ("--load", "--soak", "1"),
    ("--rocketchat", "--write-floor"), ("--store", UNREACHABLE, "--scale"),
])
def test_two_benches_at_once_are_refused(reached: Reached, args: tuple[str, ...]) -> None:
    """Before: the first ran and the second was dropped without a word."""
    r = bench(*args, "--quick")
    assert r.exit_code == 2, r.output
    assert "are two different benches" in r.output and not reached.calls


@pytest.mark.parametrize("mode", [("--scale",), ("--load",), ("--soak", "1"), ("--write-floor",),
                                  ("--ledger-split",), ("--rocketchat",),
                                  ("--store", UNREACHABLE)])
def test_the_peer_with_a_bench_that_cannot_use_it_is_refused(
        reached: Reached, tmp_path: Path, mode: tuple[str, ...]) -> None:
    r = bench(*mode, "--peer", str(tmp_path), "--quick")
    assert r.exit_code == 2, r.output
    assert f"{mode[0]} does not use it" in r.output and not reached.calls


def test_a_peer_that_cannot_run_is_refused_before_stockade_is_measured(
        reached: Reached, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Before: an unbuilt or half-built peer was found out after Stockade's figures (25-40 s
    a pair); now nothing is measured."""
    from host.bench import peer

    anchor = tmp_path / "anchor"
    anchor.mkdir()
    (anchor / "run.sh").write_text("exit 1\n")
    build = tmp_path / "build"
    (build / "engine").mkdir(parents=True)  # setup.sh stopped after copying the engine
    r = bench("--peer", str(build), "--peer-anchor", str(anchor), "--quick", "--pairs", "3")
    assert r.exit_code == 2, r.output
    assert not reached.calls
    assert "unfinished Apps-Engine build" in r.output and "harness/bench.js" in r.output
    for part in peer.BUILD_PARTS:
        (build / part).mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(peer, "TOOLS", ("bash", "no-such-program-here"))
    r = bench("--peer", str(build), "--peer-anchor", str(anchor), "--quick")
    assert r.exit_code == 2 and "no-such-program-here on PATH" in r.output, r.output
    assert not reached.calls


@pytest.mark.parametrize("args", [
    ("--soak", "nan"), ("--soak", "inf"), ("--soak", "1", "--rate", "nan"),
    ("--soak", "1", "--rate", "inf"), ("--soak", "0"), ("--load", "--rates", "nan"),
    ("--load", "--rates", "10,inf"), ("--load", "--step-seconds", "nan"),
    ("--load", "--step-seconds", "inf"), ("--load", "--rates", "-5"),
])
def test_numbers_that_are_not_finite_and_positive_are_refused(
        reached: Reached, args: tuple[str, ...]) -> None:
    """Before: NaN passed `<= 0`, so `--soak nan` never ended and `--rates nan` started the
    host and its processes, then failed with an internal error."""
    r = bench(*args)
    assert r.exit_code == 2, r.output
    assert "must be finite numbers above 0" in r.output and not reached.calls


def test_an_unreachable_store_is_said_in_one_line(tmp_path: Path) -> None:
    """Before: `unexpected OperationalError ... please report it` (exit 1)."""
    r = bench("--home", str(tmp_path / "none"), "--store", UNREACHABLE, "--quick")
    assert r.exit_code == 2, (r.output, r.exception)
    assert "cannot bench the store at postgresql://bench@127.0.0.1:1/prod" in r.output
    assert "Connection refused" in r.output and "unexpected" not in r.output


@pytest.mark.parametrize(("args", "flag"), [
    (("--rate", "9"), "--rate"),  # --soak's
    (("--load", "--quick"), "--quick"),
    (("--scale", "--no-pin-bursts"), "--no-pin-bursts"),
    (("--scale", "--server-db-apart"), "--server-db-apart"),
    (("--write-floor", "--no-host-core"), "--no-host-core"),
    (("--soak", "1", "--rates", "5"), "--rates"),
    (("--rest-in-host",), "--rest-in-host"),
    (("--ledger-split", "--degraded"), "--degraded"),
    (("--peer-anchor", "/tmp"), "--peer-anchor"),
])
def test_an_option_the_chosen_bench_does_not_read_is_refused(
        reached: Reached, args: tuple[str, ...], flag: str) -> None:
    """Each was ignored: the run measured the default (or the chosen bench's own) figures
    and said nothing of the option."""
    r = bench(*args)
    assert r.exit_code == 2, r.output
    assert f"{flag} has no effect" in r.output
    assert reached.names == []


@pytest.mark.parametrize("args", [
    ("--quick", "--no-pin-bursts", "--no-host-core", "--server-db-apart", "--degraded"),
    ("--scale", "--quick", "--no-host-core"),
])
def test_options_the_bench_reads_are_taken(reached: Reached, args: tuple[str, ...]) -> None:
    r = bench(*args)
    assert r.exit_code == 0, r.output
    assert reached.names in (["run"], ["scale"])
