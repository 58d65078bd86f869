"""One event's delivery to several apps: an outcome per app and one wait for all of them.

Why not a `concurrent.futures.Future` per app: each Future builds a Condition and an RLock, and
settling one takes its lock, notifies and walks its waiters; waiting on fifty installs a waiter
in each. For a 50-app fan-out that was about a tenth of its time, spent mostly by the event
pump's thread on the fan-out's critical path, and most server events have no one waiting at
all. A `Delivery` is one lock, one counter and one `threading.Event`; each app's job settles
its slot (`Delivery.slot(i)`), which has the two methods a job's outcome needs.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import InvalidStateError
from typing import Any, Protocol


class Outcome(Protocol):
    """Where a runner job reports how it ended (a `Future`, or a `Delivery` slot)."""

    def set_result(self, result: Any) -> None: ...

    def set_exception(self, exception: BaseException | None) -> None: ...


_PENDING = object()  # a slot not settled yet (None is a valid handler result)


class Delivery:
    """The per-app outcomes of one delivered event, in `app_ids` order."""

    __slots__ = ("_callbacks", "_done", "_failed", "_left", "_lock", "_outcomes", "app_ids")

    def __init__(self, app_ids: Sequence[str]) -> None:
        self.app_ids = tuple(app_ids)
        self._outcomes: list[Any] = [_PENDING] * len(self.app_ids)
        self._failed = [False] * len(self.app_ids)
        self._left = len(self.app_ids)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._callbacks: list[Callable[[], None]] | None = None
        if not self._left:
            self._done.set()

    def __len__(self) -> int:
        return len(self.app_ids)

    def slot(self, index: int) -> _Slot:
        """The outcome sink of app `index` (what its job settles)."""
        if not 0 <= index < len(self.app_ids):
            raise IndexError(f"no app {index} in a delivery to {len(self.app_ids)}")
        return _Slot(self, index)

    def done(self) -> bool:
        """Every app has finished the event (or failed it)."""
        return self._done.is_set()

    def on_done(self, callback: Callable[[], None]) -> None:
        """Call `callback` once every app has finished (now, if they have), on the thread that
        settles the last app; it must be quick and must not raise. Cheaper than polling `done`
        for many deliveries in flight (the load bench times each event's delay with it)."""
        with self._lock:
            if self._left:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        callback()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every app has finished; False if `timeout` seconds passed first."""
        return self._done.wait(timeout)

    def outcomes(self, timeout: float | None = None) -> list[Any]:
        """Each app's handler result, or the exception its event failed with, in order.

        Raises TimeoutError if some app has not finished within `timeout` seconds.
        """
        if not self._done.wait(timeout):
            waiting = self.pending()
            raise TimeoutError(f"{len(waiting)} of {len(self)} apps have not finished: "
                               + ", ".join(waiting[:10]))
        return list(self._outcomes)

    def results(self, timeout: float | None = None) -> list[Any]:
        """Each app's handler result, in order; raises the first app's failure, if any."""
        outcomes = self.outcomes(timeout)
        for value, failed in zip(outcomes, self._failed, strict=True):
            if failed:
                raise value
        return outcomes

    def failures(self) -> dict[str, BaseException]:
        """The apps whose event has failed so far, by app id."""
        with self._lock:
            return {app: value for app, value, failed
                    in zip(self.app_ids, self._outcomes, self._failed, strict=True) if failed}

    def pending(self) -> tuple[str, ...]:
        """The apps that have not finished the event yet, in order."""
        with self._lock:
            return tuple(app for app, value in zip(self.app_ids, self._outcomes, strict=True)
                         if value is _PENDING)

    def _settle(self, index: int, value: Any, failed: bool) -> None:
        with self._lock:
            if self._outcomes[index] is not _PENDING:
                raise InvalidStateError(f"{self.app_ids[index]}: outcome settled twice")
            self._outcomes[index] = value
            self._failed[index] = failed
            self._left -= 1
            last = not self._left
            callbacks = None
            if last:
                callbacks, self._callbacks = self._callbacks, None
        if last:
            self._done.set()
            for callback in callbacks or ():
                callback()


class _Slot:
    """One app's place in a `Delivery` (an `Outcome`)."""

    __slots__ = ("_delivery", "_index")

    def __init__(self, delivery: Delivery, index: int) -> None:
        self._delivery = delivery
        self._index = index

    def set_result(self, result: Any) -> None:
        self._delivery._settle(self._index, result, False)

    def set_exception(self, exception: BaseException | None) -> None:
        if exception is None:
            raise TypeError("a failed outcome needs its exception")
        self._delivery._settle(self._index, exception, True)
