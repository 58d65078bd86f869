"""`keys trust KEY.pub` reads the publisher's file as a small regular file, never waiting on it
or reading it whole (review finding: the file is the publisher's, handed in with their package;
a FIFO there held the command for good, and a link to /dev/zero read until memory ran out,
"unexpected MemoryError ... please report it")."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

STOCKADE = str(Path(sys.executable).parent / "stockade")


def _trust(home: Path, pub: Path) -> subprocess.CompletedProcess[str]:
    def small_memory() -> None:  # what a read of /dev/zero runs into at once, not the machine's
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([STOCKADE, "--home", str(home), "keys", "trust", str(pub), "--name",
                           "lure"], capture_output=True, text=True, timeout=20,
                          preexec_fn=small_memory)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_pub_file_that_is_no_regular_file_is_refused_at_once(tmp_path: Path,
                                                              kind: str) -> None:
    pub = tmp_path / "publisher.key.pub"
    if kind == "fifo":
        os.mkfifo(pub)  # before: the command waited for a writer (TimeoutExpired here)
    else:
        os.symlink("/dev/zero", pub)  # before: exit 1, "unexpected MemoryError"
    r = _trust(tmp_path / "home", pub)
    assert r.returncode == 2, r.stderr
    assert "not a regular file" in r.stderr and "unexpected" not in r.stderr, r.stderr
    assert not (tmp_path / "home" / "trust").exists() or not any(
        (tmp_path / "home" / "trust").iterdir())
