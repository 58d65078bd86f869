"""What `run_soak` and `run_load` do before they measure: refuse what they cannot run, and
leave nothing behind when setting up fails. The CRM process is a stand-in that records."""
from __future__ import annotations

from typing import Any, ClassVar

import pytest

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
