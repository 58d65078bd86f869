"""The lock holder named in a "kept waiting" message never shows a store URL's password
(`host/store/lockholder.py`): the holder may be any command given the store's URL on its
command line, and the message reaches another operator's screen and the host's log."""
from __future__ import annotations

import subprocess
import sys
import time

from host.store.lockholder import describe

SECRET = "hunter2-s3cret"


def test_the_holders_command_line_is_shown_without_the_password() -> None:
    args = [f"--store=postgresql://stockade:{SECRET}@db.internal/stockade",
            "--store", f"postgresql://u:{SECRET}@h/db?password={SECRET}", "serve"]
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", *args])
    try:
        deadline = time.monotonic() + 10
        while "serve" not in (said := describe(str(proc.pid))) and time.monotonic() < deadline:
            time.sleep(0.02)  # until the exec has replaced the forked command line
        assert "--store=postgresql://stockade:***@db.internal/stockade" in said, said
        assert "postgresql://u:***@h/db?password=***" in said, said
        assert SECRET not in said
    finally:
        proc.kill()
        proc.wait()


def test_a_url_across_the_shown_length_shows_no_part_of_its_password() -> None:
    """The message shows 200 characters: a URL cut there before it was masked showed the start
    of its password, which no mask could then find."""
    shown_before = len(f"{sys.executable} -c import time; time.sleep(30) ")
    pad = "x" * (200 - shown_before - 20)  # the password starts 5 characters before the cut
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", pad,
                             f"postgresql://u:{SECRET}@h/db", "serve"])
    try:
        deadline = time.monotonic() + 10
        while pad not in (said := describe(str(proc.pid))) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pad in said and SECRET[:4] not in said, said
    finally:
        proc.kill()
        proc.wait()
