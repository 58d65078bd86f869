"""`stockade demo` is the README's main job: it must run end to end and exit 0 only when every
act behaved (real host, real confined children, real loopback CRM endpoint)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

STOCKADE = str(Path(sys.executable).parent / "stockade")


def test_demo_runs_and_every_check_holds(tmp_path: Path) -> None:
    r = subprocess.run([STOCKADE, "--home", str(tmp_path), "demo", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    doc = json.loads(r.stdout)  # stdout holds the JSON summary and nothing else
    failed = [c for c in doc["checks"] if not c["ok"]]
    assert doc["ok"] is True and not failed, failed
    names = " ".join(c["name"] for c in doc["checks"])
    for act in ("QuotaExceeded", "refused at consent", "domain the policy does not list",
                "sandbox refused", "audit verify"):
        assert act in names
    assert doc["users_created"] == 3
    assert doc["crm_transcripts"] == 2
    assert doc["quota"]["used"] == doc["quota"]["limit"] == 3
    assert doc["bridge_calls"]["denied"] >= 2
    # the human narration went to stderr
    assert "Installing four apps" in r.stderr and "everything behaved" in r.stderr
