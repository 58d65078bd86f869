from __future__ import annotations

from collections.abc import Iterator

import pytest
from sechelp import ExecHarness

from host.supervise.spawner import Spawner


@pytest.fixture(scope="session")
def spawner() -> Iterator[Spawner]:
    sp = Spawner(use_zygote=True)
    try:
        yield sp
    finally:
        sp.close()


@pytest.fixture(scope="session")
def sandbox(spawner: Spawner) -> ExecHarness:
    return ExecHarness(spawner)
