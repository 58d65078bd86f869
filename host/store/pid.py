"""This process's pid without a system call: connections are per process, and `Store.conn()`
asks on every bridge call whether its connection was opened in this process."""
from __future__ import annotations

import os


class _Pid:
    """Refreshed in a forked child: `os.getpid()` is a real system call on current glibc."""

    value = os.getpid()

    @classmethod
    def refresh(cls) -> None:
        cls.value = os.getpid()


os.register_at_fork(after_in_child=_Pid.refresh)


def current_pid() -> int:
    """This process's pid (see `_Pid`)."""
    return _Pid.value
