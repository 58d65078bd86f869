"""Shared test set-up: puts tests/ on sys.path so helpers like gatehelp.py import by name."""

import signal
from collections.abc import Iterator

import pytest

# The suite runs as under a terminal: a non-interactive shell that starts it in the background
# (`cmd &`) passes SIGINT ignored, every process it starts would inherit that, and the CLI keeps
# an ignored SIGINT ignored (host/cli/main.py), so the Ctrl-C tests' processes would ignore it.
# A handler (not SIG_IGN) here is reset to the default in every process the tests start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
