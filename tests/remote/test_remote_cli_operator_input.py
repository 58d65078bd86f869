"""What the operator types into `standin` and `rocketchat connect` comes back as one clear line:
a webhook token file that cannot be read is a usage error (it was "unexpected
FileNotFoundError ... please report it", exit 1), and the URL and user id `connect` echoes are
shown inert (an escape in a pasted user id reached the terminal raw, and `[` in a URL was read
as markup)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from rchelp import STOCKADE


def _run(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([STOCKADE, "--home", str(home), *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_unreadable_webhook_token_file_is_one_usage_line(tmp_path: Path) -> None:
    r = _run(tmp_path / "h", "standin", "--port", "0", "--webhook-url",
             "http://127.0.0.1:9/rocketchat/webhook", "--webhook-token-file",
             str(tmp_path / "missing.secret"))
    assert r.returncode == 2, r.stderr
    assert "unexpected" not in r.stderr and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error: ") and "missing.secret" in lines[0], r.stderr
    assert len(lines) == 2 and lines[1].startswith("hint: "), r.stderr


def test_empty_webhook_token_file_is_refused(tmp_path: Path) -> None:
    """An empty secret would sign webhooks with nothing: the receiver refuses them all."""
    empty = tmp_path / "empty.secret"
    empty.write_text("\n")
    r = _run(tmp_path / "h", "standin", "--port", "0", "--webhook-url",
             "http://127.0.0.1:9/rocketchat/webhook", "--webhook-token-file", str(empty))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and "empty" in r.stderr, r.stderr


def test_connect_echoes_what_was_typed_inert(tmp_path: Path) -> None:
    r = _run(tmp_path / "h", "rocketchat", "connect", "--url",
             "https://chat.example.com/[bold red]x", "--user-id", "U\x1b[2J\x1b[31mid",
             stdin="tok\n")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stderr, repr(r.stderr)
    assert "[bold red]x" in r.stderr, r.stderr  # shown as typed, not read as markup


def test_standin_json_says_where_it_listens_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    """Every command takes --json (README): `standin --json` was a usage error (exit 2). It
    writes one JSON document, once listening, and a Ctrl-C stops it: 130 and one line."""
    import json
    import os
    import signal

    import httpx

    p = subprocess.Popen([STOCKADE, "--home", str(tmp_path / "h"), "standin", "--port", "0",
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        assert p.stdout is not None
        text = b""
        while not text.endswith(b"}\n"):  # one document, then it serves
            chunk = p.stdout.readline()
            assert chunk, p.stderr.read() if p.stderr else b""
            text += chunk
        doc = json.loads(text)
        assert doc["pid"] == p.pid and doc["url"].startswith("http://127.0.0.1:")
        assert httpx.get(f"{doc['url']}/api/info", timeout=10).json()["success"] is True
        os.killpg(p.pid, signal.SIGINT)
        assert p.wait(30) == 130
        assert p.stdout.read() == b""
        assert p.stderr is not None and p.stderr.read().decode().endswith(
            "\ninterrupted: stopped\n")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(30)
