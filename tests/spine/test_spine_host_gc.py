"""A started host tunes its process's garbage collector once (`host.supervise.gctune.tune_gc`)."""
from __future__ import annotations

import gc
from pathlib import Path

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.gctune import GC_GEN0_THRESHOLD


def test_a_started_host_freezes_startup_objects_and_collects_young_objects_less_often(
        tmp_path: Path) -> None:
    host = Host(Home(tmp_path / "home").ensure(), config=HostConfig(watch=False))
    host.start()
    try:
        assert gc.get_threshold()[0] >= GC_GEN0_THRESHOLD
        assert gc.get_freeze_count() > 0
    finally:
        host.stop()
