"""What an interrupted command says: shared by the console script's entry and the CLI's root
(a module of its own so the entry imports nothing heavy), and the net that keeps a Ctrl-C from
being lost in a finalizer."""
from __future__ import annotations

import _thread
import signal
import sys
from typing import Any

# Exit code after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
# What an interrupted command prints on stderr, on a line of its own (the terminal echoed ^C
# where the cursor was).
INTERRUPTED_LINE = "\ninterrupted: stopped\n"


# Exit code after SIGTERM (128 + SIGTERM), as shells and service managers report it.
EXIT_TERMINATED = 143
# What a command stopped by SIGTERM prints on stderr.
TERMINATED_LINE = "terminated: stopped\n"


class Interrupted(SystemExit):
    """Raised in the main thread on SIGINT (`host.cli.main`). A SystemExit, so click's prompt and
    abort handling let it through and every `finally` (stopping the host, its zygote and
    children) runs."""

    def __init__(self) -> None:
        super().__init__(EXIT_INTERRUPTED)


class Terminated(Interrupted):
    """Raised in the main thread on SIGTERM, the stop a service manager (systemd, a container
    runtime) or `kill` sends: handled as a Ctrl-C is, so `serve` stops its host (the events and
    calls under way finished and recorded, its lease on a shared store let go, the audit
    anchored) and `demo` or `bench` removes its temporary home. Before, SIGTERM ended the
    process where it stood and none of that ran."""

    def __init__(self) -> None:
        SystemExit.__init__(self, EXIT_TERMINATED)


def _redeliver(unraisable: Any) -> None:
    """`sys.unraisablehook`: a Ctrl-C raised inside a weakref callback or `__del__` (run from C,
    where Python ignores what they raise) is delivered again, so the command stops.

    Python runs a signal's handler at the next bytecode it executes; after a system call (an
    import's file reads) that is often the import machinery's module-lock callback, and the
    KeyboardInterrupt or `Interrupted` raised there was printed as "Exception ignored" and
    dropped: the command went on to its end, exit 0. The signal is sent to the main thread again
    from a thread of its own, once this hook has returned: sent from here, its handler would run
    at once, inside the finalizer still (`_thread.interrupt_main` checks at once). Should it land
    in a finalizer again, it comes back here. Nothing happens when SIGINT is ignored by then (the
    CLI ignores it while it prints that it stopped)."""
    if isinstance(unraisable.exc_value, (KeyboardInterrupt, Interrupted)) and _main:
        again = signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT
        _owed.append(again)  # until a handler takes it (`settle`), or the command ends (`owed`)
        try:
            _thread.start_new_thread(signal.pthread_kill, (_main[0], again))
        except RuntimeError:  # the interpreter is shutting down: the command is ending anyway
            pass
        return
    _previous(unraisable)


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether `exc` comes of a Ctrl-C the interpreter wrapped in another error: Python 3.11
    turns one raised in a descriptor's `__set_name__` (pydantic's, while the CLI loads) into
    "RuntimeError: Error calling __set_name__", caused by it. Such a command was interrupted,
    not failing (it printed that traceback, or "unexpected RuntimeError", exit 1)."""
    return interrupt_in(exc) is not None


def interrupt_in(exc: BaseException) -> BaseException | None:
    """The Ctrl-C (or SIGTERM's `Terminated`) `exc` was caused by, if any (see
    `caused_by_interrupt`)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen and len(seen) < _CHAIN_LIMIT:
        if isinstance(cur, (KeyboardInterrupt, Interrupted)):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


# How far `caused_by_interrupt` follows an error's causes (bounds a cycle or a long chain).
_CHAIN_LIMIT = 32
_previous = sys.unraisablehook
# The thread a Ctrl-C is delivered to again: the one that installed the hook (the main thread).
_main: list[int] = []


# Signals `_redeliver` sent again that no handler has taken yet. The thread that sends one may
# not run before a short command ends (`stockade --help` takes 0.2 s; on a loaded machine the
# thread waited longer): the command then ended 0, the Ctrl-C lost after all. Its end asks
# `owed` and ends as interrupted instead.
_owed: list[int] = []


def owed() -> int | None:
    """The signal redelivered and not yet handled, if any (SIGINT or SIGTERM)."""
    return _owed[-1] if _owed else None


def settle() -> None:
    """A handler took the signal: nothing is owed any more."""
    _owed.clear()


def install_redelivery() -> None:
    """Idempotent: the console script's entry installs it before anything else is imported."""
    if sys.unraisablehook is not _redeliver:
        _main[:] = [_thread.get_ident()]
        sys.unraisablehook = _redeliver
