"""How an app's child fails, as the host names it: the child ended (`ChildDied`), a confinement
layer is missing (`LayerMissing`), the app's handler raised (`AppFailed`), and the readers that
turn a Done frame or an exit status into one of them.

Split from `host.supervise.child` (which re-exports every name here, as callers import them);
it imports nothing of the host, so any module of the supervisor may raise or catch these.
"""
from __future__ import annotations

import os
import signal
from typing import Any

from sandbox.frames import Done, WireError


class ChildDied(Exception):
    """The child ended (killed for a limit, crashed, or broke the protocol)."""

    def __init__(self, reason: str, code: str = "child_died") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class LayerMissing(Exception):
    """A confinement layer is missing and the host was not started in degraded mode."""


class AppFailed(Exception):
    """The app's handler raised (or the snippet failed): capped text from the child."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def done_result(msg: Done) -> Any:
    """A handler's result, or AppFailed with the child's (capped) error."""
    if msg.ok:
        return msg.result
    err = msg.error or WireError(code="app_error", message="")
    raise AppFailed(err.code, err.message)


def describe_status(status: int | None) -> str:
    if status is None:
        return "child exited"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {"SIGXCPU": "CPU time limit", "SIGKILL": "killed", "SIGSEGV": "crashed",
               "SIGSYS": "forbidden system call", "SIGABRT": "aborted"}.get(name, "signal")
        return f"child {why} ({name})"
    return f"child exited with code {os.WEXITSTATUS(status)}"
