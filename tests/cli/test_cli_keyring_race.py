"""Two operators changing the host keyring at once: no change undoes another's (a retirement
silently lost to a concurrent `keys host-rotate` let a leaked key verify again)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from host.fsio import flocked
from host.keys.keyring import Keyring

STOCKADE = str(Path(sys.executable).parent / "stockade")


def _meta(keys: Path) -> dict[str, object]:
    return dict(json.loads((keys / "keyring.json").read_text()))


def test_rotate_by_a_stale_keyring_keeps_a_retirement_made_meanwhile(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    ring = Keyring.open(keys)
    old = ring.current
    ring.rotate()
    stale = Keyring.open(keys)  # another process opened it before the retire
    ring.retire(old)
    stale.rotate()
    assert old in _meta(keys)["retired"]  # type: ignore[operator]
    assert old in Keyring.open(keys).retired


def test_retire_by_a_stale_keyring_keeps_a_rotation_made_meanwhile(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    ring = Keyring.open(keys)
    first = ring.current
    second = ring.rotate()
    stale = Keyring.open(keys)
    third = ring.rotate()
    stale.retire(first)
    meta = _meta(keys)
    assert meta["current"] == third and meta["retired"] == [first]
    assert stale.current == third and second not in stale.retired


def test_cli_rotate_waits_for_the_keyring_lock_and_leaves_no_temp_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    subprocess.run([STOCKADE, "--home", str(home), "init"], check=True, capture_output=True)
    keys = home / "keys"
    before = _meta(keys)
    with flocked(keys / ".keyring.lock"):
        proc = subprocess.Popen([STOCKADE, "--home", str(home), "keys", "host-rotate"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert proc.poll() is None, "host-rotate changed the keyring without its lock"
            assert _meta(keys) == before
        finally:
            if proc.poll() is not None:
                proc.communicate()
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert _meta(keys)["current"] != before["current"]
    assert not [p.name for p in keys.iterdir() if p.name.endswith(".tmp")]
