"""A started host tunes its process's garbage collector once (`host.supervise.gctune.tune_gc`)."""
from __future__ import annotations

import gc
from pathlib import Path

import pytest

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.gctune import GC_GEN0_THRESHOLD

# The suite leaves the collector alone in its workers (tests/conftest.py); these tests are the
# tuning's own.
pytestmark = pytest.mark.gc_tuning


def test_a_started_host_freezes_startup_objects_and_collects_young_objects_less_often(
        tmp_path: Path) -> None:
    host = Host(Home(tmp_path / "home").ensure(), config=HostConfig(watch=False))
    host.start()
    try:
        assert gc.get_threshold()[0] >= GC_GEN0_THRESHOLD
        assert gc.get_freeze_count() > 0
    finally:
        host.stop()


def test_garbage_left_before_the_first_start_is_collected_not_frozen(tmp_path: Path) -> None:
    """The freeze keeps what start-up allocated and still uses; garbage in reference cycles at
    that moment (a command's earlier work, a stopped host's stores and their open connections)
    is collected first. Before, it was frozen with the rest and never freed, whatever it held
    (a file descriptor, a connection). Run in a process of its own: a host started earlier in
    the same process tuned it already."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import gc, weakref
        from pathlib import Path
        from host.home import Home
        from host.runtime import Host, HostConfig

        class Held:
            pass

        def garbage():
            a, b = Held(), Held()
            a.other, b.other = b, a  # a cycle: only the collector frees it
            return weakref.ref(a)

        gc.collect()
        gc.disable()  # the collector would find it on its own schedule otherwise
        left = garbage()
        host = Host(Home(Path({str(tmp_path / "home")!r})).ensure(),
                    config=HostConfig(watch=False))
        host.start()
        gc.enable()
        try:
            gc.collect()
            print("frozen" if left() is not None else "freed")
        finally:
            host.stop()
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "freed", r.stdout
