"""A short `stockade bench --soak` in the suite (issue 26's leak).

A separate process runs ~25 s of conversations through the real host with the four example
apps, crm-sync posting every closed conversation to a loopback CRM over `http.request`. With a
new HTTP client per request (the leak) the host grew ~85 MiB after warm-up in this run; pooled
it grows a few MiB. The bound is a memory bound, not a timing one; the 30-minute run with its
0.5 MiB/min slope target is opt-in (`stockade bench --soak 30`, figures in docs/BENCH.md).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Far above what the pooled client grows in this run (~4 MiB), far below the leak (~85 MiB).
MAX_GROWTH_AFTER_WARMUP_MIB = 30.0


def test_a_short_soak_through_the_real_host_does_not_grow(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from host.cli.main import main; main()",
         "--home", str(tmp_path / "unused"), "bench",
         "--soak", "0.2", "--rate", "20", "--json"],  # 240 conversations,
        capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["conversations"] > 100
    # every closed conversation went out over HTTP: the path that leaked was exercised
    assert out["crm_received"] == out["conversations"]
    # one pooled client per install and host: crm-sync's CRM, proxy-agent's live-agent API
    assert out["http_clients_created"] == 2
    assert out["rss_growth_after_warmup_mib"] <= MAX_GROWTH_AFTER_WARMUP_MIB, out
    assert out["threads_end"] <= out["threads_start"] + 2, out
    assert out["events_dropped"] == 0
