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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what the worker holds once its tests are collected (every module they import,
    the collected items): the collector stops rescanning it. Each full collection a test
    process makes (on its own schedule, or a test's `gc.collect()`) otherwise walks that whole
    heap again: about a fifth of the spine and security tests' time. Garbage is collected first:
    what is frozen is never freed."""
    import gc

    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _worker_keeps_its_gc(request: pytest.FixtureRequest,
                         monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test worker is an embedder that manages its own collector (what `HostConfig.tune_gc`
    is off for), so the hosts it starts leave it alone. Tuned, every host a worker starts (the
    first one running there) collected the worker's whole heap, and its stop unfroze the freeze
    above. The tuning's own tests (marked `gc_tuning`) get the real thing in a process that
    looks unfrozen, as a fresh one would; a host a test runs as a process of its own (the CLI,
    `stockade serve`) tunes as in production."""
    import gc

    if request.node.get_closest_marker("gc_tuning") is None:
        import host.runtime

        monkeypatch.setattr(host.runtime, "tune_gc", lambda host: None)
        monkeypatch.setattr(host.runtime, "untune_gc", lambda host: None)
        yield
        return
    gc.unfreeze()
    try:
        yield
    finally:
        gc.collect()
        gc.freeze()


@pytest.fixture
def pg_url() -> str:
    """A PostgreSQL URL with an empty schema of its own (a real server; tests/pghelp.py)."""
    import pghelp

    return pghelp.cluster().fresh_url()


def _share_httpx_ssl_contexts() -> None:
    """One verifying SSL context per test process for the httpx clients it builds, not one per
    client. httpx loads certifi's whole bundle into a fresh context for every client, ~25-60 ms
    of CPU each here, and the tests build thousands (one per `httpx.get`), nearly all for plain
    HTTP on loopback, where no context is used: about a minute of the suite's two cores. The
    context is the one httpx builds, with the same arguments; only a caller passing its own
    (or a client certificate, or a CA file in the environment) gets a fresh one, as before."""
    import os

    from httpx._transports import default

    build = default.create_ssl_context
    shared: dict[tuple[bool, bool], object] = {}

    def create_ssl_context(verify: object = True, cert: object = None,
                           trust_env: bool = True) -> object:
        env = trust_env and (os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"))
        if type(verify) is not bool or cert is not None or env:
            return build(verify=verify, cert=cert, trust_env=trust_env)  # type: ignore[arg-type]
        key = (verify, trust_env)
        if key not in shared:
            shared[key] = build(verify=verify, cert=cert, trust_env=trust_env)
        return shared[key]

    default.create_ssl_context = create_ssl_context  # type: ignore[assignment]


_share_httpx_ssl_contexts()
