"""The operator's commands against the stand-in process: `rocketchat connect` (token from
stdin, 0600, never printed), `rocketchat check` / `doctor` (version, permissions, extra power),
`serve --server rocketchat` refusing an unreachable workspace in one line, and the whole
`demo --server rocketchat`."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

from rchelp import STOCKADE, TOKENS_SECRET, Standin

from host.server.remote.permcheck import NEEDED


def _run(*args: str, stdin: str = "", home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STOCKADE, "--home", str(home), *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_connect_stores_the_token_0600_and_check_reports_the_account(
        standin: Standin, tmp_path: Path) -> None:
    home = tmp_path / "h"
    r = _run("rocketchat", "connect", "--url", standin.url, "--user-id", standin.user_id,
             "--json", stdin=f"{standin.token}\n{TOKENS_SECRET}\n", home=home)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["create_tokens_secret_stored"] is True
    for held in (standin.token, TOKENS_SECRET):  # neither is ever echoed
        assert held not in r.stdout + r.stderr
    secret = home / "rocketchat.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert json.loads(secret.read_text())["create_tokens_secret"] == TOKENS_SECRET
    assert len(out["webhook_secret"]) >= 32
    c = _run("rocketchat", "check", "--json", home=home)
    rep = json.loads(c.stdout)
    assert c.returncode == 0, c.stderr
    assert rep["reachable"] and rep["missing"] == [] and rep["account"] == "stockade"
    assert set(rep["needed"]) == set(NEEDED)
    # The stand-in's service account is an admin: more power than Stockade needs, named.
    assert any("admin" in w for w in rep["warnings"])
    assert "delete-user" in rep["extra_power"]
    # `stockade doctor` says the same (its workspace checks, without starting a child here).
    from host.doctor import workspace_checks
    from host.home import Home

    checks = workspace_checks(Home(home))
    assert [c.ok for c in checks[:2]] == [True, True]
    assert any("is an admin" in c.detail for c in checks[2:])
    # The connection is an operator record in the audit chain; the token is not in it.
    audit = _run("audit", "tail", "--json", home=home)
    assert "rocketchat_connect" in audit.stdout and standin.token not in audit.stdout
    assert TOKENS_SECRET not in audit.stdout


def test_check_fails_without_the_create_tokens_secret_a_workspace_requires(
        standin: Standin, tmp_path: Path) -> None:
    """The stand-in runs as Rocket.Chat 8+ (CREATE_TOKENS_FOR_USERS_SECRET set): connected
    without that secret, every message an app sends as its user would be refused; `check` says
    so (exit 1) instead of `serve` finding out at the first message."""
    home = tmp_path / "h"
    _run("rocketchat", "connect", "--url", standin.url, "--user-id", standin.user_id,
         stdin=standin.token + "\n", home=home)
    c = _run("rocketchat", "check", "--json", home=home)
    rep = json.loads(c.stdout)
    assert c.returncode == 1 and rep["missing"] == []
    assert "CREATE_TOKENS_FOR_USERS_SECRET" in rep["problem"]


def test_check_fails_with_a_token_the_workspace_refuses(standin: Standin,
                                                        tmp_path: Path) -> None:
    home = tmp_path / "h"
    _run("rocketchat", "connect", "--url", standin.url, "--user-id", standin.user_id,
         stdin="not-the-token\n", home=home)
    c = _run("rocketchat", "check", home=home)
    assert c.returncode == 1 and "refused the token" in c.stderr


def test_a_secret_file_others_can_read_is_refused(standin: Standin, tmp_path: Path) -> None:
    home = tmp_path / "h"
    _run("rocketchat", "connect", "--url", standin.url, "--user-id", standin.user_id,
         stdin=standin.token + "\n", home=home)
    os.chmod(home / "rocketchat.secret", 0o644)
    c = _run("rocketchat", "check", home=home)
    assert c.returncode == 2 and "readable by others" in c.stderr
    assert "Traceback" not in c.stderr


def test_serve_refuses_an_unreachable_workspace_in_one_line(tmp_path: Path) -> None:
    s = Standin(tmp_path / "s").start()
    home = tmp_path / "h"
    _run("rocketchat", "connect", "--url", s.url, "--user-id", s.user_id,
         stdin=s.token + "\n", home=home)
    s.stop()
    r = _run("serve", "--port", "0", home=home)
    assert r.returncode == 1
    assert "cannot reach the workspace" in r.stderr and "Traceback" not in r.stderr


def test_demo_runs_the_whole_story_against_a_separate_standin(tmp_path: Path) -> None:
    r = _run("demo", "--server", "rocketchat", "--json", home=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    doc = json.loads(r.stdout)
    failed = [c for c in doc["checks"] if not c["ok"]]
    assert doc["ok"] is True and not failed, failed
    assert doc["users_created"] == 4 and doc["crm_transcripts"] == 2  # as tests/demo
    assert doc["quota"]["used"] == doc["quota"]["limit"] == 3
    assert "stand-in Rocket.Chat workspace in its own process" in r.stderr
    _every_event_told_before_the_summary(r.stderr.splitlines())


def _every_event_told_before_the_summary(lines: list[str]) -> None:
    """The uninstall story's last conversation starts on the stand-in workspace, whose webhook
    reaches the host a moment later: its `livechat.room_started` line came after the summary and
    the final "everything behaved" (in every run seen), and the summary's event count was 34 or
    35 by that race. (Checked on the run above: a second demo run costs the suite ~20 s.)"""
    summary = next(i for i, ln in enumerate(lines) if "Audit and summary" in ln)
    late = [ln for ln in lines[summary:] if ln.lstrip().startswith("event ")]
    assert late == [], late
    uninstall = next(i for i, ln in enumerate(lines) if "Uninstall:" in ln)
    told = [ln for ln in lines[uninstall:summary] if "livechat.room_started" in ln]
    assert told, lines[uninstall:summary]  # the Bot conversation's start, told in its story


def test_serve_receives_the_workspaces_webhooks_and_settles_them(tmp_path: Path) -> None:
    """`stockade serve --server rocketchat` as its own process: the stand-in's webhooks reach
    its receiver, which turns them into (durably claimed) events."""
    import signal
    import socket
    import sqlite3
    import time

    import httpx
    from rchelp import connect

    from host.home import Home

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = Standin(tmp_path / "s", webhook_url=f"http://127.0.0.1:{port}/rocketchat/webhook",
                retry_s=0.2).start()
    home = Home(tmp_path / "h").ensure()
    connect(home, s)
    proc = subprocess.Popen([STOCKADE, "--home", str(home.root), "serve", "--server",
                             "rocketchat", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "webhook receiver:" in line:
                break
        httpx.post(f"{s.url}/api/v1/livechat/visitor",
                   json={"visitor": {"token": "tok-serve-0123456789", "name": "S"}})
        room = httpx.get(f"{s.url}/api/v1/livechat/room",
                         params={"token": "tok-serve-0123456789"}).json()["room"]
        key = f"started:{room['_id']}"
        deadline = time.monotonic() + 20
        while True:
            with sqlite3.connect(home.host_db) as db:
                if db.execute("SELECT 1 FROM rc_delivered WHERE key=?", (key,)).fetchone():
                    break
            assert time.monotonic() < deadline, "the webhook never became an event"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        s.stop()
    assert proc.returncode in (0, 130)
