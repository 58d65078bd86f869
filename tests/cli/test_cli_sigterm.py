"""SIGTERM, the stop a service manager (systemd, a container runtime) or `kill` sends, is handled
as a Ctrl-C is: every `finally` runs (`host.cli.interrupt.Terminated`).

Before, SIGTERM ended a command where it stood: `stockade demo` left its temporary home (an
admin's data, the apps' packages) in /tmp for good, `bench` its home too, and `serve
--rest-in-host` died right after uvicorn's own graceful stop, before its `finally` stopped the
host (events under way dropped, calls left to the next start's settlement). A one-shot command
ends with 143 and one line; `serve` stopped by SIGTERM has served to the end and exits 0, on both
of its paths (a REST front process, or the REST API in the host's process)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STOCKADE = str(Path(sys.executable).parent / "stockade")


def _terminate(args: list[str], ready: str, tmp_path: Path) -> tuple[int, str]:
    """Start `stockade ARGS` (TMPDIR: `tmp_path`), wait for `ready` on stderr, then SIGTERM its
    process alone, as `kill PID` or a service manager does."""
    err = tmp_path / "stderr.txt"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    with open(err, "w") as ef:
        p = subprocess.Popen([STOCKADE, *args], stdout=subprocess.DEVNULL, stderr=ef, env=env,
                             start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            # Read while the child writes: a look can end inside a character of its narration
            # (a clean-clone CI run failed on a UnicodeDecodeError there).
            while ready not in err.read_text(errors="replace"):
                assert p.poll() is None and time.monotonic() < deadline, \
                    err.read_text(errors="replace")
                time.sleep(0.05)
            p.send_signal(signal.SIGTERM)
            code = p.wait(timeout=60)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(30)
    return code, err.read_text()


def test_a_terminated_demo_removes_its_temporary_home(tmp_path: Path) -> None:
    code, err = _terminate(["demo"], "Visitor", tmp_path)
    # Before: -15 (killed where it stood) and the stockade-demo-* folder left behind.
    assert code == 143, err
    assert err.rstrip().endswith("terminated: stopped"), err[-2000:]
    assert "Traceback" not in err, err
    left = sorted(p.name for p in tmp_path.glob("stockade-*"))
    assert left == [], f"a terminated demo left {left}"


def test_serve_in_one_process_stops_its_host_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, err = _terminate(["--home", str(home), "serve", "--port", "0", "--rest-in-host"],
                           "stockade server:", tmp_path)
    # Before: -15 after uvicorn's own stop, the host never stopped.
    assert code == 0, err
    assert "Traceback" not in err, err  # exit 0 is the end of `serve`, past the host's stop


def test_serve_with_its_rest_front_exits_0_on_sigterm(tmp_path: Path) -> None:
    """The default path (a REST front process) stopped on SIGTERM already: it stays so."""
    code, err = _terminate(["--home", str(tmp_path / "home"), "serve", "--port", "0"],
                           "REST front: process", tmp_path)
    assert code == 0, err
    assert "Traceback" not in err, err


def test_a_sigterm_python_wrapped_is_still_a_termination() -> None:
    """Python 3.11 wraps what a descriptor's `__set_name__` raises (pydantic's, while the CLI
    loads) in a RuntimeError: a SIGTERM landing there still ends as one (143, its own line)."""
    from host.cli.interrupt import Interrupted, Terminated, interrupt_in

    try:
        try:
            raise Terminated()
        except Terminated as exc:
            raise RuntimeError("Error calling __set_name__") from exc
    except RuntimeError as wrapped:
        assert isinstance(interrupt_in(wrapped), Terminated)
    assert interrupt_in(RuntimeError("plain")) is None
    assert not isinstance(interrupt_in(Interrupted()), Terminated)
