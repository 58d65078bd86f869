"""Shared helpers for the security suite: run snippets the way `stockade sandbox exec` does.

`run_snippet` (host/sandbox_exec.py) starts a fresh zygote per call (~0.1-0.3 s). The escape
suite runs ~100 snippets, so `ExecHarness` runs them through the *real* `run_snippet` but with
its `Spawner` swapped for one shared zygote: every snippet still gets its own freshly forked,
fully confined child, its own token and handshake, and run_snippet's own exit-code logic.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import host.sandbox_exec as sandbox_exec
from host.child import Child, ChildLimits, Spawner

REPO = Path(__file__).resolve().parents[2]
STOCKADE = Path(sys.executable).parent / "stockade"
MARKER = "ESCAPED"


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    message: str

    @property
    def escaped(self) -> bool:
        return MARKER in self.stdout


class _SharedSpawner:
    """Stands in for `host.sandbox_exec.Spawner`: same `start`, but `close` keeps the zygote."""

    def __init__(self, real: Spawner) -> None:
        self._real = real

    def __call__(self, use_zygote: bool = True) -> _SharedSpawner:
        return self

    def start(self, limits: ChildLimits) -> Child:
        return self._real.start(limits)

    def close(self) -> None:
        pass


class ExecHarness:
    def __init__(self, spawner: Spawner) -> None:
        self.spawner = spawner

    def run(self, source: str, timeout: float = 5.0, memory_mib: int = 128) -> Outcome:
        out = io.StringIO()
        original: Any = sandbox_exec.Spawner
        sandbox_exec.Spawner = _SharedSpawner(self.spawner)  # type: ignore[misc,assignment]
        try:
            res = sandbox_exec.run_snippet(source, timeout=timeout, memory_mib=memory_mib,
                                           write=out.write)
        finally:
            sandbox_exec.Spawner = original  # type: ignore[misc]
        return Outcome(res.exit_code, out.getvalue(), res.message)


def cli_exec(source: str, tmp_path: Path, *args: str, timeout: float = 60.0) -> Outcome:
    """Run `stockade sandbox exec FILE ARGS...` as a real subprocess (the reviewers' tool)."""
    path = tmp_path / "snippet.py"
    path.write_text(source)
    proc = subprocess.run(
        [str(STOCKADE), "sandbox", "exec", str(path), *args],
        capture_output=True, text=True, timeout=timeout, cwd=str(tmp_path),
        env={**os.environ, "STOCKADE_HOME": str(tmp_path / "home")},
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)
