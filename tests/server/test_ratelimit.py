"""The public routes' rate limiter (`host.server.ratelimit`): GCRA, exact at its bounds."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.server.ratelimit import Rate, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_of_the_limit_then_the_steady_rate() -> None:
    clock = Clock()
    lim = RateLimiter(Rate(10, 60.0), clock=clock)
    assert [lim.take("a") for _ in range(10)] == [None] * 10
    refused = lim.take("a")
    assert refused is not None and refused.wait_s == pytest.approx(6.0)  # 60 s / 10
    assert refused.retry_after == 6
    clock.t += 5.9
    assert lim.take("a") is not None  # not yet
    clock.t += 0.1
    assert lim.take("a") is None  # one more after the spacing
    assert lim.take("a") is not None
    assert lim.take("b") is None  # keys are independent


def test_refused_calls_do_not_push_the_wait_further() -> None:
    clock = Clock()
    lim = RateLimiter(Rate(2, 10.0), clock=clock)
    assert lim.take("a") is None and lim.take("a") is None
    waits = [lim.take("a") for _ in range(100)]
    assert all(w is not None and w.wait_s == pytest.approx(5.0) for w in waits)
    clock.t += 5.0
    assert lim.take("a") is None


def test_the_table_is_bounded_and_forgets_idle_keys_first() -> None:
    clock = Clock()
    lim = RateLimiter(Rate(1, 10.0), max_keys=3, clock=clock)
    for key in ("old", "b", "c"):
        assert lim.take(key) is None
    clock.t += 10.0  # "old" is back on schedule: forgetting it forgets nothing
    assert lim.take("d") is None
    assert len(lim) == 3
    assert lim.take("old") is None  # as if new, which it was (its unit had freed)
    assert lim.take("d") is not None  # recent keys kept their state


@settings(max_examples=200, deadline=None)
@given(calls=st.integers(1, 20), per_s=st.floats(0.5, 100.0),
       gaps=st.lists(st.floats(0.0, 20.0), min_size=1, max_size=200))
def test_the_bucket_bounds_hold_whatever_the_arrivals(calls: int, per_s: float,
                                                      gaps: list[float]) -> None:
    """Any span of L seconds admits at most `calls` + L / (per_s / calls) (the burst and the
    refill): at most twice `calls` in `per_s`; and a key idle for `per_s` gets its whole burst."""
    clock = Clock()
    lim = RateLimiter(Rate(calls, per_s), clock=clock)
    admitted: list[float] = []
    for gap in gaps:
        clock.t += gap
        if lim.take("k") is None:
            admitted.append(clock.t)
    spacing = per_s / calls
    for i, t in enumerate(admitted):
        inside = [u for u in admitted[i:] if u < t + per_s]
        assert len(inside) <= calls + (inside[-1] - t) / spacing + 1e-6, (calls, per_s, admitted)
    clock.t += per_s
    assert [lim.take("k") for _ in range(calls)] == [None] * calls


def test_a_rate_must_be_one_call_or_more_in_a_positive_span() -> None:
    for calls, per_s in ((0, 1.0), (1, 0.0), (1, float("inf")), (1, float("nan"))):
        with pytest.raises(ValueError):
            Rate(calls, per_s)
