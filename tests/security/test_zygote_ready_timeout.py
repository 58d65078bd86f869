"""A zygote that hangs before its ready answer is killed and its start refused within
`READY_TIMEOUT_S` (`host/supervise/zygote_client.py`). The spawner's one keeper thread starts a
replacement zygote while every app start waits on it: before, a replacement that never answered
held that thread for good, and every later start failed after its own wait."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Any

import pytest

from host.supervise import zygote_client
from host.supervise.zygote_client import Zygote, ZygoteError


def test_a_zygote_silent_before_ready_is_killed_and_refused(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    started: list[subprocess.Popen[Any]] = []
    real = subprocess.Popen

    def stopped_at_birth(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        proc = real(*args, **kwargs)
        os.kill(proc.pid, signal.SIGSTOP)  # long before the interpreter could say ready
        started.append(proc)
        return proc

    monkeypatch.setattr(zygote_client.subprocess, "Popen", stopped_at_birth)
    monkeypatch.setattr(zygote_client, "READY_TIMEOUT_S", 1.0, raising=False)
    outcome: list[BaseException | Zygote] = []

    def start() -> None:
        try:
            outcome.append(Zygote(lambda _pid, _status: None))
        except BaseException as exc:  # reported below
            outcome.append(exc)

    t = threading.Thread(target=start, daemon=True)
    t.start()
    t.join(15)
    try:
        assert not t.is_alive(), "the start still waits on the silent zygote"
        [got] = outcome
        assert isinstance(got, ZygoteError) and "no ready answer" in str(got), got
        [proc] = started
        assert proc.poll() is not None  # killed and reaped, not left stopped
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_fork_request_the_zygote_cannot_take_leaves_nothing_pending() -> None:
    """A request that cannot be sent (the channel's end closed under it) is refused as the
    zygote's death and forgets its entry; before, a raw OSError, and the entry kept for the
    zygote's life."""
    import socket

    zygote = Zygote(lambda _pid, _status: None)
    try:
        zygote._sock.shutdown(socket.SHUT_WR)  # the sends fail; the listener still reads
        with pytest.raises(ZygoteError, match="gone"):
            zygote.fork((0, 1, 2), {})
        assert zygote._pending == {}
    finally:
        zygote.close()
