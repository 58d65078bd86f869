"""The host's log lines (what `stockade serve` says on stderr while it runs) are the operator's
screen too (DESIGN rule 12): a value they quote that the host did not write reaches it inert.

Reproduced with a lease row of a shared store (any host sharing the store writes these): a
host id of "\\x1b[2J\\x1b]0;pwned\\x07\\nFORGED LINE..." was logged verbatim when the starting
host settled that "stopped" host's calls (`host %s stopped serving without finishing`), so it
cleared the screen, retitled the terminal and printed a line of its own choosing. The host had
no handler of its own: Python's last-resort handler wrote each message raw.
"""
from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from host import logline
from host.home import Home
from host.migrate import migrate

REPO = Path(__file__).resolve().parents[2]
EVIL = "\x1b[2J\x1b]0;pwned\x07\nFORGED LINE: stockade server: http://127.0.0.1:1/\u202e"


def test_a_lease_rows_host_id_is_logged_inert(tmp_path: Path, pg_url: str) -> None:
    migrate(pg_url)
    home = Home(tmp_path / "home", pg_url).ensure()
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("INSERT INTO host_leases(host_id, machine, pid, since, beat)"
                  " VALUES(%s, 'box', 1, 0, 0)", ("gone" + EVIL,))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from host.cli.main import main; main()", "--home",
         str(home.root), "--store", pg_url, "serve", "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=REPO)
    said: list[str] = []
    try:
        assert proc.stderr is not None
        for ln in proc.stderr:
            said.append(ln)
            if re.search(r"^stockade server: http://127\.0\.0\.1:(\d+)/", ln):
                break
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = "".join(said)
    assert "stopped serving without finishing" in text, text
    for ch in ("\x1b", "\x07", "\u202e"):
        assert ch not in text, repr(text)
    assert not any(ln.startswith("FORGED") for ln in said), text
    assert "gone\\x1b[2J\\x1b]0;pwned\\x07\\nFORGED" in text, text


def test_the_front_process_handler_is_inert_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The REST front (and the console beside it) logs in a process of its own, through the same
    handler with its own prefix (`front_proc.main`); the formatter's whole contract here: one
    line, escapes shown, cut; a traceback's lines kept but nothing active in them, and indented
    so that an exception text's own newline starts no line at column 0."""
    handler = logline._StderrNow(logging.WARNING)
    handler.setFormatter(logline.InertFormatter("stockade front: "))
    log = logging.getLogger("stockade.test.logline")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("console: %s's sign-in refused", "v" + EVIL + "x" * 10_000)
        try:
            raise ValueError("bad " + EVIL)
        except ValueError:
            log.exception("request %s failed", EVIL)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    err = capsys.readouterr().err
    for ch in ("\x1b", "\x07", "\u202e"):
        assert ch not in err, repr(err)
    lines = err.splitlines()
    assert lines[0].startswith("stockade front: console: v\\x1b[2J"), lines[0]
    assert len(lines[0]) < logline.MAX_LOG_MESSAGE + 100
    assert not any(ln.startswith(("FORGED", "stockade server:")) for ln in lines), err
    # A traceback still reads by lines, each indented under its message.
    assert "  Traceback (most recent call last):" in lines, err


# A server made as every server of the product is (`listen.http_config`), whose one route fails
# with a message quoting what the client sent, in a process whose log lines are the host's.
_FAILING_SERVER = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from host import logline
from host.server.listen import http_config, tcp_listener

async def fail(request):
    raise RuntimeError("bad value " + request.query_params["v"])

logline.install()
sock = tcp_listener("127.0.0.1", 0)
print(sock.getsockname()[1], flush=True)
uvicorn.Server(http_config(Starlette(routes=[Route("/", fail)]), log_level="warning",
                           lifespan="off")).run(sockets=[sock])
"""


def test_an_asgi_failure_is_logged_inert(tmp_path: Path) -> None:
    """uvicorn's own "Exception in ASGI application" line and its traceback went through
    uvicorn's handler, raw: a failure whose message quoted a client's value put the value's
    escapes and lines on the operator's screen. Now through the host's handler."""
    import httpx

    proc = subprocess.Popen([sys.executable, "-c", _FAILING_SERVER], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        r = httpx.get(f"http://127.0.0.1:{port}/", params={"v": EVIL}, timeout=10)
        assert r.status_code == 500
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    assert "Exception in ASGI application" in err, err
    assert "bad value" in err, err
    for ch in ("\x1b", "\x07", "\u202e"):
        assert ch not in err, repr(err)
    assert not any(ln.startswith("FORGED") for ln in err.splitlines()), err
