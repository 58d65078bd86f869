"""`keys trust KEY.pub`, `policy add FILE` and `sandbox exec FILE` read the file they are given
as a regular file of bounded size, never waiting on it or reading it whole (review finding: the
files are someone else's, an author's handed in with their package, a reporter's snippet; a
FIFO there held the command for good, and a link to /dev/zero read until memory ran out,
"unexpected MemoryError ... please report it")."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

STOCKADE = str(Path(sys.executable).parent / "stockade")


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    def small_memory() -> None:  # what a read of /dev/zero runs into at once, not the machine's
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([STOCKADE, "--home", str(home), *args], capture_output=True,
                          text=True, timeout=20, preexec_fn=small_memory)


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize(("name", "command"), [
    ("publisher.key.pub", ("keys", "trust", "{}", "--name", "lure")),
    ("lure.policy.toml", ("policy", "add", "{}")),
    ("report.py", ("sandbox", "exec", "{}")),  # a reporter's snippet (SECURITY.md)
])
def test_a_handed_in_file_that_is_no_regular_file_is_refused_at_once(
        tmp_path: Path, kind: str, name: str, command: tuple[str, ...]) -> None:
    given = tmp_path / name
    if kind == "fifo":
        os.mkfifo(given)  # before: the command waited for a writer (TimeoutExpired here)
    else:
        os.symlink("/dev/zero", given)  # before: exit 1, "unexpected MemoryError"
    home = tmp_path / "home"
    r = _run(home, *(a.format(given) for a in command))
    assert r.returncode == 2, r.stderr
    assert "not a regular file" in r.stderr and "unexpected" not in r.stderr, r.stderr
    assert not (home / "trust").exists() or not any((home / "trust").iterdir())
    assert not (home / "policies" / name).exists()
