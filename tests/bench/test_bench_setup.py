"""What `run_soak` and `run_load` do before they measure: refuse what they cannot run, and
leave nothing behind when setting up fails. The CRM process is a stand-in that records."""
from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
from rich.console import Console

from host.bench import load, soak

NAN, INF = float("nan"), float("inf")


class FakeCrm:
    started: ClassVar[list[FakeCrm]] = []
    stopped: ClassVar[list[FakeCrm]] = []

    def __init__(self, api_key: str) -> None:
        self.port = 1

    def start(self) -> FakeCrm:
        FakeCrm.started.append(self)
        return self

    def stop(self) -> None:
        FakeCrm.stopped.append(self)


class DemoBuilt(Exception):
    """The stubbed `quiet_demo` was reached: nothing real (home, host, children) is built."""


@pytest.fixture()
def crm(monkeypatch: pytest.MonkeyPatch) -> type[FakeCrm]:
    FakeCrm.started, FakeCrm.stopped = [], []

    def quiet_demo(*_a: Any, **_kw: Any) -> Any:
        raise DemoBuilt()

    for module in (soak, load):
        monkeypatch.setattr(module, "CrmProcess", FakeCrm)
        monkeypatch.setattr(module, "quiet_demo", quiet_demo)
    return FakeCrm


@pytest.mark.parametrize("call", [
    lambda: soak.run_soak(NAN), lambda: soak.run_soak(1.0, INF), lambda: soak.run_soak(0.0),
    lambda: load.run_load([NAN]), lambda: load.run_load([10.0, INF]),
    lambda: load.run_load([10.0], NAN), lambda: load.run_load([]),
])
def test_numbers_that_are_not_finite_and_positive_start_nothing(
        crm: type[FakeCrm], call: Any) -> None:
    with pytest.raises(ValueError, match="finite and above 0"):
        call()
    assert not crm.started


@pytest.mark.parametrize("call", [lambda: soak.run_soak(0.01), lambda: load.run_load([10.0], 1.0)])
def test_a_demo_that_cannot_be_built_leaves_no_crm_process_running(
        crm: type[FakeCrm], call: Any) -> None:
    """Before: the CRM process was started before the `try` whose `finally` stops it."""
    with pytest.raises(DemoBuilt):
        call()
    assert len(crm.started) == 1 and crm.stopped == crm.started


@pytest.mark.parametrize("failing", ["examples", "home"])
def test_a_demo_that_fails_to_construct_leaves_no_folder(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, failing: str) -> None:
    """Before: `Demo()` made its temporary home, then looked for examples/ (missing from a
    non-source install) and raised, and no caller held the Demo to remove the folder."""
    from host.demo import scenario

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def refused(*_a: Any, **_kw: Any) -> Any:
        raise FileNotFoundError("examples/apps not found")

    if failing == "examples":
        monkeypatch.setattr(scenario, "examples_dir", refused)
    else:
        monkeypatch.setattr(scenario.Home, "ensure", refused)
    with pytest.raises(FileNotFoundError):
        scenario.Demo(Console(file=io.StringIO()))
    assert list(tmp_path.iterdir()) == []
