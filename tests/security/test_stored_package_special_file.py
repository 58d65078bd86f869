"""A stored package replaced by a special file is refused at the app's start, never read.

Every start reads the stored package (`packages/<hash>/package.zip`) and hashes it against the
consented content hash (`host.supervise.appcode`, `test_package_swap.py`). The read checked the
size `stat` reported and then read the whole file: a link to /dev/zero (size 0) grew the serving
host's memory without bound, and a fifo hung the start (and the thread starting it) forever,
where a swapped package must only be refused.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from apphelp import install, write_app

from host.apps.package_rules import PackageError
from host.apps.package_sources import read_zip_bytes
from host.home import Home
from host.supervise.appcode import AppCode

SRC = "from stockade import App\n\nclass TestApp(App):\n    pass\n"
ROOT = Path(__file__).resolve().parents[2]


def _installed(tmp_path: Path) -> tuple[Home, object]:
    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(tmp_path / "apps", "special", ["livechat.read"], [], SRC))
    return home, rec


def test_a_stored_package_made_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    _home, rec = _installed(tmp_path)
    path: Path = rec.package_path  # type: ignore[attr-defined]
    path.unlink()
    os.mkfifo(path)
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            AppCode().modules(rec)  # type: ignore[arg-type]
            outcome.append(None)
        except BaseException as exc:  # the test reports whatever the start raised
            outcome.append(exc)

    t = threading.Thread(target=start, daemon=True)
    t.start()
    t.join(10)
    # Before: still blocked in open(), waiting for a writer that never comes.
    assert not t.is_alive(), "the start hung on a fifo"
    assert isinstance(outcome[0], PackageError), outcome
    assert "not a regular file" in str(outcome[0])


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_stored_package_linked_to_dev_zero_is_refused_without_reading_it(
        tmp_path: Path) -> None:
    _home, rec = _installed(tmp_path)
    path: Path = rec.package_path  # type: ignore[attr-defined]
    path.unlink()
    path.symlink_to("/dev/zero")
    with pytest.raises(PackageError, match="not a regular file"):
        read_zip_bytes(path)
    # The same read in a child held to 512 MiB of address space and 30 s, so the version
    # before the fix fails this test (MemoryError, or the time limit) instead of the machine.
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))\n"
            "from pathlib import Path\n"
            "from host.apps.package_rules import PackageError\n"
            "from host.apps.package_sources import read_zip_bytes\n"
            "try:\n"
            f"    read_zip_bytes(Path({str(path)!r}))\n"
            "except PackageError as exc:\n"
            "    print('refused:', exc)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "refused:" in r.stdout, (r.returncode, r.stdout, r.stderr[-500:])
