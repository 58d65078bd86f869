"""A reader of stderr that quits (`stockade keys host-rotate 2>&1 | head -1`) changes neither
what a command does nor its exit code (review finding: every command exited 1 once its first
line for people met the closed pipe, also `keys host-rotate`, whose rotation was made: a script
reading the exit code would rotate again). The console script, in a real process whose stderr's
reader has gone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from host.keys.keyring import Keyring

STOCKADE = str(Path(sys.executable).parent / "stockade")


def test_a_made_rotation_exits_0_though_no_one_reads_its_lines(tmp_path: Path) -> None:
    home = tmp_path / "home"
    read, write = os.pipe()
    os.close(read)  # the reader quit before the command wrote
    try:
        done = subprocess.run([STOCKADE, "--home", str(home), "keys", "host-rotate", "--json"],
                              stdout=subprocess.PIPE, stderr=write, text=True, timeout=60,
                              check=False)
    finally:
        os.close(write)
    assert done.returncode == 0  # before: 1, with the key made
    assert Keyring.open(home / "keys").current == json.loads(done.stdout)["current"]
