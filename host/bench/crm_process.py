"""The demo CRM in a process of its own, for the long benches (`--soak`, `--load`).

In the host's process the CRM's own work (a uvicorn server, every request it parses) would be
measured as the host's CPU and memory; in its own process the figures are the host's alone.
It only counts what it receives (`DemoCrm(keep=False)`); `received_count` asks it over HTTP.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

# How long the CRM process may take to listen. Guards a bench against waiting forever on a
# child that failed to start (its stderr is reported).
START_TIMEOUT_S = 20.0


class CrmProcess:
    """Start with `start()`, stop with `stop()`; `port` once started."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.port = 0
        self._dir = Path(tempfile.mkdtemp(prefix="stockade-crm-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CrmProcess:
        ready = self._dir / "port"
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "host.demo.crm", self.api_key, str(ready)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                err = self._proc.stderr.read() if self._proc.stderr else b""
                self.stop()
                raise RuntimeError(f"the demo CRM process did not start: {err[-300:]!r}")
            time.sleep(0.02)
        self.port = int(ready.read_text(encoding="ascii"))
        return self

    @property
    def received_count(self) -> int:
        stats = httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=10,
                          trust_env=False).json()
        return int(stats["received"])

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        if self._proc is not None and self._proc.stderr is not None:
            self._proc.stderr.close()
        self._proc = None
        for f in self._dir.iterdir():
            f.unlink(missing_ok=True)
        self._dir.rmdir()
