"""Four apps calling at once over two host processes that share one home: what a second core
buys the gate.

A host's Python runs under one interpreter lock, and with its threads on one core
(`HostConfig.host_core`) four apps calling at once keep that core busy while the second one
mostly waits (docs/BENCH.md, "Four apps at once: what a read costs the host"). What spreads the
gate over a second core is a second host process: hosts on one machine may share one home
(docs/SCALE.md), and each places its threads on a core no other host claimed
(`host.supervise.coreclaim`). Here the bench's own host serves two of the four readers and a
second host, started as `python -m host.bench.twohosts`, serves the other two; both run the
same rounds at once, and a round's figure is every call of both over the span from the first
start to the last end (`time.monotonic` is the machine's clock, the same in both processes).

The second host runs with the bench's own configuration, starts on every core (not on the one
the bench's host threads share, which it would inherit) and talks over its stdin and stdout:
`ready` once its readers answered a first loop, then one line of JSON per `go` line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from host.bench.apps import BenchInstalls
from host.bench.bridge import reads_at_once, warm
from host.home import Home
from host.runtime import Host, HostConfig


def measure_two_hosts(host: Host, installs: BenchInstalls, uid: str, calls_per_app: int,
                      rounds: int) -> list[float]:
    """Reads a second, all four readers at once: the first two on `host`, the other two on a
    second host process over the same home with `host`'s configuration; one figure per round.
    Empty where this process may use one CPU only (a second host would buy nothing there)."""
    everywhere = sorted(host.affinity.everywhere)
    if len(everywhere) < 2:
        return []
    ours = [host.runners[r.install_id] for r in installs.readers[:2]]
    theirs = [r.install_id for r in installs.readers[2:]]
    settings = {k: v for k, v in asdict(host.config).items()
                if k in ("degraded", "group_reads", "pin_apps", "pin_bursts", "host_core")}
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "host.bench.twohosts", str(host.home.root),
             json.dumps(theirs), uid, json.dumps(everywhere), json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            _expect(proc, "ready", errors)
            warm(ours, uid)
            rates: list[float] = []
            for _ in range(rounds):
                _send(proc, f"go {calls_per_app}")
                t0, t1, n = reads_at_once(ours, uid, calls_per_app)
                other = json.loads(_expect(proc, None, errors))
                span = max(t1, float(other["t1"])) - min(t0, float(other["t0"]))
                rates.append((n + int(other["n"])) / span)
            return rates
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _send(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _expect(proc: subprocess.Popen[str], want: str | None, errors: Any) -> str:
    """The second host's next line (`want` exactly, if given); its stderr in the error if it
    ended instead."""
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line or (want is not None and line != want):
        proc.kill()
        proc.wait()
        errors.seek(0)
        raise RuntimeError(f"the second host failed (said {line!r}): {errors.read()[-2000:]}")
    return line


def _serve(home: Path, install_ids: Sequence[str], uid: str, config: HostConfig) -> None:
    with Host(Home(home), config=config) as host:
        runners = [host.runners[i] for i in install_ids]
        warm(runners, uid)
        print("ready", flush=True)
        for line in sys.stdin:
            verb, _, calls = line.partition(" ")
            if verb != "go":
                break
            t0, t1, n = reads_at_once(runners, uid, int(calls))
            print(json.dumps({"t0": t0, "t1": t1, "n": n}), flush=True)


def main(argv: Sequence[str]) -> None:
    home, ids, uid, cpus, settings = argv
    # As `stockade serve` starts: on every core, whatever core the bench's host threads share.
    os.sched_setaffinity(0, json.loads(cpus))
    config = HostConfig(watch=False, **json.loads(settings))
    _serve(Path(home), json.loads(ids), uid, config)


if __name__ == "__main__":
    main(sys.argv[1:])
