"""Shared test set-up: puts tests/ on sys.path so helpers like gatehelp.py import by name."""

import pytest


@pytest.fixture
def pg_url() -> str:
    """A PostgreSQL URL with an empty schema of its own (a real server; tests/pghelp.py)."""
    import pghelp

    return pghelp.cluster().fresh_url()
