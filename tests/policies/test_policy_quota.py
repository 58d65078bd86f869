"""The pure sliding-window math against a naive reference."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.quota import admit, effective_now, next_free_at, retain, used


def naive_admit(ts: list[float], limit: int, window: float, now: float) -> bool:
    return limit > 0 and sum(1 for t in ts if t > now - window) < limit


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(-50, 200, allow_nan=False), st.booleans()), max_size=40),
       st.integers(0, 5), st.integers(1, 60))
def test_log_matches_reference_and_never_exceeds_limit(steps: list[tuple[float, bool]],
                                                       limit: int, window: int) -> None:
    log: list[float] = []
    high: float | None = None
    for t, _ in steps:
        now = effective_now(t, high)
        high = now
        expect = naive_admit(log, limit, window, now)
        assert admit(log, limit, window, now) == expect
        if expect:
            log.append(now)
            log.sort()
        # exactness: no window (now - W, now] ever holds more than limit
        assert used(log, window, now) <= limit
        nf = next_free_at(log, limit, window, now)
        if limit == 0:
            assert nf is None
        else:
            assert nf is not None and nf >= now
            assert admit(log, limit, window, nf)
            assert retain(log, limit) == log[-limit:]


def test_clock_step_back_frees_nothing() -> None:
    log = [100.0, 101.0, 102.0]
    high = 102.0
    now = effective_now(10.0, high)  # wall clock stepped back 92 s
    assert not admit(log, 3, 60, now)
    assert next_free_at(log, 3, 60, now) == 160.0


def test_boundary_is_exclusive_at_window_start() -> None:
    assert not admit([0.0], 1, 10, 9.999)
    assert admit([0.0], 1, 10, 10.0)
