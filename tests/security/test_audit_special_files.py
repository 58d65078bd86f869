"""A FIFO, a device or a huge file where the audit anchor, its key or the anchor's lock file
belongs never hangs or exhausts a host or an operator command.

Someone with write access to the home (not the key's bytes) could put a FIFO at
`HOME/audit.anchor`, `HOME/keys/audit-anchor.key` or `HOME/.audit.anchor.lock`: opening a FIFO
to read blocks until a writer comes, so `audit verify` (and `serve`, which verifies at start)
hung for ever, and a host's next anchoring (on the bridge call that appends record 1 or every
64th) blocked inside the call. A symlink to /dev/zero, or a large sparse file, was read whole
into memory. Each is now opened without blocking, must be a regular file, and is read up to a
small cap; anything else is a damaged anchor or key, reported like one.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.audit import AuditError, AuditLog, AuditRecord

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0
# Each child gets this long: the fixed code answers in about a second; the old one never did.
TIMEOUT_S = 30
# The children's address space: a whole read of the 8 GiB sparse file cannot fit in it.
MEMORY_CAP = 2 << 30


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _home(home: Path) -> None:
    log = AuditLog(home / "host.db", ManualClock(T0))
    for i in range(3):
        log.append(AuditRecord(kind="supervisor", event="test", detail=f"r{i}"))
    log.close()


def _replace(path: Path, how: str) -> None:
    path.unlink(missing_ok=True)
    if how == "fifo":
        os.mkfifo(path, 0o600)
    elif how == "dev-zero":
        path.symlink_to("/dev/zero")
    else:  # a sparse file far larger than the child's memory
        with open(path, "wb") as f:
            f.truncate(8 << 30)


def _verify(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from host.cli.main import main; main()", "--home", str(home),
         "audit", "verify", "--json"],
        capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT, preexec_fn=_limit)


@pytest.mark.parametrize("how", ["fifo", "dev-zero", "huge"])
def test_a_special_or_huge_anchor_is_a_damaged_anchor(tmp_path: Path, how: str) -> None:
    _home(tmp_path)
    _replace(tmp_path / "audit.anchor", how)
    r = _verify(tmp_path)
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and "anchor" in doc["problem"], doc


@pytest.mark.parametrize("how", ["fifo", "dev-zero", "huge"])
def test_a_special_or_huge_key_is_refused_in_one_line(tmp_path: Path, how: str) -> None:
    _home(tmp_path)
    _replace(tmp_path / "keys" / "audit-anchor.key", how)
    r = _verify(tmp_path)
    assert r.returncode in (1, 2) and r.stdout == "", r
    assert "audit-anchor.key" in r.stderr and "unexpected" not in r.stderr, r.stderr


_APPEND = """
import sys
from pathlib import Path
from host.clock import ManualClock
from host.ledger.audit import AuditError, AuditLog, AuditRecord
log = AuditLog(Path(sys.argv[1]) / "host.db", ManualClock(1_700_000_000.0), anchor_every=1)
for i in range(3):
    log.append(AuditRecord(kind="supervisor", event="test", detail=f"r{i}"))
log.close()
print("appended")
"""


def test_a_fifo_for_the_anchor_lock_never_blocks_an_append(tmp_path: Path) -> None:
    _home(tmp_path)
    _replace(tmp_path / ".audit.anchor.lock", "fifo")
    r = subprocess.run([sys.executable, "-c", _APPEND, str(tmp_path)], capture_output=True,
                       text=True, timeout=TIMEOUT_S, cwd=ROOT)
    assert r.returncode == 0 and "appended" in r.stdout, r.stderr
    assert "anchor" in r.stderr  # the anchoring that could not run is logged


def test_a_dangling_symlink_for_the_key_is_refused_not_taken_for_no_key(tmp_path: Path) -> None:
    """The key is made with O_EXCL, which a dangling symlink refuses: the log must not then go
    on with no key at all (no anchor would ever be written)."""
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "audit-anchor.key").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(AuditError, match=r"audit-anchor\.key"):
        AuditLog(tmp_path / "host.db", ManualClock(T0))
