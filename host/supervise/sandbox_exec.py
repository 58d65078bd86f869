"""`stockade sandbox exec`: run one restricted-Python file in a fresh sandbox, no permissions.

Exit codes: 0 success; 1 the code raised or was refused at compile time (error on stderr);
3 killed for a limit (deadline, CPU, memory, output or request flood), reason on stderr.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

from host.clock import SystemClock
from host.keys import tokens
from host.keys.keyring import Keyring
from host.supervise.child import AppFailed, ChildDied, ChildLimits
from host.supervise.spawner import Spawner

# What `sandbox exec` relays to stdout at most; the host survives an output flood by dropping
# the rest (and saying so on stderr).
MAX_EXEC_OUTPUT = 1 << 20
_LIMIT_CODES = frozenset({"timeout", "flood", "memory_limit"})
MAX_SOURCE_CHARS = 1 << 20  # what one Exec frame may carry (sandbox.protocol.Exec)


@dataclass
class ExecResult:
    exit_code: int
    message: str = ""


def run_snippet(
    source: str,
    *,
    timeout: float = 5.0,
    memory_mib: int = 128,
    write: Callable[[str], object] = sys.stdout.write,
    use_zygote: bool = True,
    degraded: bool = False,
) -> ExecResult:
    if len(source) > MAX_SOURCE_CHARS:
        return ExecResult(1, f"source larger than {MAX_SOURCE_CHARS} characters")
    ring = Keyring.ephemeral()
    clock = SystemClock()
    spawner = Spawner(use_zygote=use_zygote)
    written = [0, False]

    def on_log(text: str, truncated: bool) -> None:
        room = MAX_EXEC_OUTPUT - int(written[0])
        if room > 0:
            write(text[:room])
            written[0] = int(written[0]) + min(len(text), room)
        if truncated or len(text) > room:
            written[1] = True

    try:
        child = spawner.start(ChildLimits(memory_mib=memory_mib,
                                          cpu_seconds=max(1, math.ceil(timeout)) + 1))
        try:
            token = tokens.issue(ring, clock, app_id="sandbox-exec", install_id="none",
                                 session_id=child.session_id, generation=0, epoch=0,
                                 permissions=frozenset(), policy_hash="none", ttl_s=timeout + 60)
            child.handshake(token, lambda t: tokens.handed_back(t, token),
                            degraded=degraded)
            child.exec_source(source, timeout, on_log)
            result = ExecResult(0)
        except AppFailed as exc:
            if exc.message.startswith("MemoryError") or ": MemoryError" in exc.message:
                result = ExecResult(3, f"killed for a limit: memory limit ({memory_mib} MiB)")
            else:
                result = ExecResult(1, f"{exc.code}: {exc.message}")
        except ChildDied as exc:
            if exc.code in _LIMIT_CODES or "CPU time" in exc.reason or "SIGKILL" in exc.reason:
                result = ExecResult(3, f"killed for a limit: {exc.reason}")
            else:
                crash = child.stderr_text().strip()
                detail = f"\n{crash[-1500:]}" if crash else ""
                result = ExecResult(1, f"sandbox failed: {exc.reason}{detail}")
        finally:
            child.shutdown(timeout=0.5)
    finally:
        spawner.close()
    if written[1] and result.exit_code == 0:
        result.message = f"output truncated at {MAX_EXEC_OUTPUT} bytes"
    return result
