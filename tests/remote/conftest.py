"""One stand-in workspace process per module (each start costs ~1 s); tests use fresh names
and clear the stand-in's faults after themselves."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from rchelp import Standin


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standin]:
    s = Standin(tmp_path_factory.mktemp("standin")).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture()
def clean(standin: Standin) -> Iterator[Standin]:
    yield standin
    if standin.proc is not None:
        standin.clear_faults()
