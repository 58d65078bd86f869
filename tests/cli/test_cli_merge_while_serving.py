"""`stockade store migrate` run while a host serves a home whose server keeps its own server.db
refuses to move it, changes nothing of it, and says so as a refusal (exit 1), not as the
operator's typing error (exit 2, "usage or input error", which it was).
"""
from __future__ import annotations

import json
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures
from test_cli_store_merge import QUIET, _old_home

from host.clock import SystemClock
from host.ledger.audit import open_readonly
from host.runtime import Host


def test_a_merge_while_a_host_serves_is_refused_with_exit_1(cli: Run, home: Path) -> None:
    h = _old_home(home)
    with Host(h, config=QUIET):
        r = cli("store", "migrate", "--json")
    assert r.exit_code == 1, r.output
    assert "a host is serving this home" in r.stderr and "stop `stockade serve`" in r.stderr
    assert r.stdout == ""
    assert (h.root / "server.db").exists() and h.server_db != h.host_db  # nothing moved
    log = open_readonly(h.host_db, SystemClock())
    bodies = [json.loads(b) for (b,) in log.store.conn().execute("SELECT body FROM audit")]
    ends = [b for b in bodies if b.get("kind") == "operator.outcome"]
    assert ends and ends[-1]["ok"] is False  # the attempt and its refusal are in the chain
