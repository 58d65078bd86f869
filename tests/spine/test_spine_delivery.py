"""`Delivery`: one event's per-app outcomes and one wait for all of them (host/supervise/delivery.py)."""
from __future__ import annotations

import threading
from concurrent.futures import InvalidStateError

import pytest

from host.supervise.delivery import Delivery


def test_it_is_done_only_when_every_app_has_settled() -> None:
    d = Delivery(["a", "b", "c"])
    d.slot(1).set_result("B")
    d.slot(0).set_result(None)  # None is a result, not "pending"
    assert not d.done()
    assert d.pending() == ("c",)
    assert not d.wait(0.01)
    with pytest.raises(TimeoutError, match="1 of 3 apps have not finished: c"):
        d.outcomes(0.01)
    d.slot(2).set_result([3])
    assert d.done() and d.wait(0)
    assert d.results() == [None, "B", [3]]  # in app order, not settling order


def test_a_failure_is_kept_per_app_and_raised_by_results() -> None:
    d = Delivery(["a", "b", "c"])
    first, second = RuntimeError("b broke"), ValueError("c broke")
    d.slot(0).set_result(1)
    d.slot(2).set_exception(second)
    d.slot(1).set_exception(first)
    assert d.outcomes(0) == [1, first, second]
    assert d.failures() == {"b": first, "c": second}
    with pytest.raises(RuntimeError, match="b broke"):  # the first failing app, in order
        d.results(0)


def test_an_outcome_cannot_be_settled_twice() -> None:
    d = Delivery(["a", "b"])
    d.slot(0).set_result(1)
    with pytest.raises(InvalidStateError, match="a: outcome settled twice"):
        d.slot(0).set_exception(RuntimeError("late"))
    assert d.pending() == ("b",)  # the refused second outcome counted nothing
    with pytest.raises(TypeError):
        d.slot(1).set_exception(None)
    with pytest.raises(IndexError):
        d.slot(2)


def test_a_delivery_to_no_app_is_done_at_once() -> None:
    d = Delivery([])
    assert len(d) == 0 and d.done() and d.results(0) == []


def test_outcomes_settled_from_many_threads_are_all_counted() -> None:
    n = 64
    d = Delivery([f"app{i}" for i in range(n)])
    start = threading.Barrier(8)

    def settle(part: int) -> None:
        start.wait()
        for i in range(part, n, 8):
            d.slot(i).set_result(i)

    threads = [threading.Thread(target=settle, args=(p,)) for p in range(8)]
    for t in threads:
        t.start()
    assert d.wait(10)
    for t in threads:
        t.join()
    assert d.results(0) == list(range(n))


def test_on_done_calls_back_once_when_the_last_app_settles() -> None:
    d = Delivery(["a", "b"])
    calls: list[str] = []
    d.on_done(lambda: calls.append("first"))
    d.slot(1).set_result(2)
    assert calls == []  # one app still running
    d.on_done(lambda: calls.append("second"))
    d.slot(0).set_exception(RuntimeError("a broke"))  # a failure finishes it too
    assert calls == ["first", "second"]
    d.on_done(lambda: calls.append("late"))  # already done: at once
    assert calls == ["first", "second", "late"]
    assert Delivery([]).done()
    empty: list[int] = []
    Delivery([]).on_done(lambda: empty.append(1))
    assert empty == [1]
