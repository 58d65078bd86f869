"""`stockade serve --server rocketchat` names the workspace it serves in its start lines, with
the version the workspace reports (`GET /api/info`): a hostile workspace (or whatever answers in
its place) chose that text, so it reaches the operator's screen inert (DESIGN rule 12).

Before: the version went into an f-string printed as it was: "6.0\\x1b[2J...\\nstockade server:
..." cleared the screen and printed a line of the workspace's choosing among the host's own
start lines (`rocketchat check` and `doctor` already showed it inert).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from rcfake import FakeWorkspace, remote_on

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

from host.cli import serve_lease
from host.server.remote import config

EVIL = "\x1b[2J\x1b]0;pwned\x07\nstockade server: http://127.0.0.1:1/api/v1/\u202e"


def _hostile(root: Path) -> Any:
    fake = FakeWorkspace({"GET me": lambda q, b: (200, {"_id": "svc", "username": "svc",
                                                         "roles": ["user"]})})
    real = fake.handle

    def handle(req: Any) -> Any:
        if req.url.path == "/api/info":
            return httpx.Response(200, json={"version": f"6.0{EVIL}"})
        return real(req)
    rs = remote_on(fake, root)
    rs.client.http = httpx.Client(base_url=rs.client.base, transport=httpx.MockTransport(handle))
    return rs


def test_the_workspaces_version_is_shown_inert_at_start(
        cli: Run, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = cli("rocketchat", "connect", "--url", "https://rc.example", "--user-id", "svc",
            input="token\nsecret\n")
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(config, "open_remote", lambda h, clock, url=None: _hostile(home))
    # Serving itself is not under test: the start lines are printed before it.
    monkeypatch.setattr(serve_lease, "serve_until_lease_lost", lambda server, host, sock: None)
    r = cli("serve", "--server", "rocketchat", "--port", "0", "--degraded")
    assert "Rocket.Chat 6.0\\x1b[2J" in r.stderr, r.output
    for ch in ("\x1b", "\x07", "\u202e"):
        assert ch not in r.output, repr(r.output)
    assert sum(ln.startswith("stockade server:") for ln in r.output.splitlines()) == 0, r.output
