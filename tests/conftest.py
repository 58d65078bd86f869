"""Shared test set-up: puts tests/ on sys.path so helpers like gatehelp.py import by name."""

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _close_gate_rigs() -> Iterator[None]:
    """Close the gate rigs (tests/gatehelp.py) a test built, when it ends."""
    yield
    import sys

    gatehelp = sys.modules.get("gatehelp")
    if gatehelp is not None:
        gatehelp.close_rigs()


@pytest.fixture
def pg_url() -> str:
    """A PostgreSQL URL with an empty schema of its own (a real server; tests/pghelp.py)."""
    import pghelp

    return pghelp.cluster().fresh_url()
