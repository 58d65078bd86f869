"""`stockade serve` as an operator runs it: a real process, started and awaited here."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from host.home import Home

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def serving(home: Home, *args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`stockade --home HOME [args before serve...] serve --port 0 [args]` until it has printed
    its address (stderr stays readable from there on); yields the process and its port; stopped
    (or killed) at the end. `args` before a literal "serve" go before the command
    (`--store URL`)."""
    pre, post = (list(args[:args.index("serve")]), list(args[args.index("serve") + 1:])) \
        if "serve" in args else ([], list(args))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from host.cli.main import main; main()", "--home",
         str(home.root), *pre, "serve", "--port", "0", *post],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if m := re.search(r"stockade server: http://127\.0\.0\.1:(\d+)/", line):
                break
        else:
            raise AssertionError(f"serve did not start (exit {proc.wait()})")
        yield proc, int(m.group(1))
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def in_thread(config: uvicorn.Config) -> Iterator[str]:
    """A uvicorn server for `config` (port 0) on a thread of this process, on loopback: yields
    its base URL once it listens; stopped at the end."""
    userver = uvicorn.Server(config)
    t = threading.Thread(target=userver.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not userver.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = userver.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        userver.should_exit = True
        t.join(5)
