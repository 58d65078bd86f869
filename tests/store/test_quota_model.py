"""The durable ring against a naive reference (a list of timestamps), under a hypothesis state machine."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from host.clock import ManualClock
from host.ledger.quota import Charge, QuotaStore, Reservation, reserve_in

T0 = 1_700_000_000.0
W = 10.0


class Reference:
    """Exact sliding-window log with a time high-water mark: the specification."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.window = W
        self.units: list[tuple[float, str]] = []  # every unit not refunded, forever
        self.hw: float | None = None

    def eff(self, now: float) -> float:
        return now if self.hw is None else max(now, self.hw)

    def used(self, now: float) -> int:
        e = self.eff(now)
        return sum(1 for ts, _ in self.units if ts + self.window > e)

    def reserve(self, now: float, op: str) -> bool:
        if self.used(now) >= self.limit:
            return False
        e = self.eff(now)
        self.units.append((e, op))
        self.hw = e
        return True

    def refund(self, op: str) -> None:
        self.units = [u for u in self.units if u[1] != op]


class QuotaMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="stockade-quota-"))
        self.clock = ManualClock(T0)
        self.n_ops = 0
        self.made: list[Reservation] = []

    @initialize(limit=st.integers(1, 4))
    def setup(self, limit: int) -> None:
        self.limit = limit
        self.ref = Reference(limit)
        self.q = QuotaStore(self.dir / "host.db", self.clock)

    def teardown(self) -> None:
        self.q.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def charge(self) -> Charge:
        return Charge("app:x:users.create", self.limit, self.ref.window)

    @rule()
    def reserve(self) -> None:
        self.n_ops += 1
        op = f"op{self.n_ops}"
        # The charge's own path, whose states (the count the audit record holds) come from the
        # count kept on the key, not from the binary search `state` runs.
        with self.q.store.transaction() as c:
            got, states = reserve_in(c, [self.charge], op, self.clock.now())
        want = self.ref.reserve(self.clock.now(), op)
        assert isinstance(got, Reservation) == want, (got, self.ref.units)
        assert states[0].used == self.ref.used(self.clock.now()), (states, self.ref.units)
        if isinstance(got, Reservation):
            self.made.append(got)

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 2.5, 5.0, 9.999, 10.0, 10.001, 25.0]))
    def forward(self, dt: float) -> None:
        self.clock.advance(dt)

    @rule(dt=st.sampled_from([0.5, 3.0, 10.0, 100.0]))
    def backward(self, dt: float) -> None:
        self.clock.set(self.clock.now() - dt)

    @precondition(lambda self: bool(self.made))
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        # Any reservation, newest or not, still counted or long freed.
        r = data.draw(st.sampled_from(self.made))
        self.made.remove(r)
        self.q.refund(r)
        self.ref.refund(r.op_id)

    @rule(limit=st.integers(1, 5))
    def policy_changes_limit(self, limit: int) -> None:
        self.limit = limit
        self.ref.limit = limit

    @rule()
    def restart(self) -> None:
        self.q.close()
        self.q = QuotaStore(self.dir / "host.db", self.clock)

    @invariant()
    def same_count(self) -> None:
        if not hasattr(self, "q"):
            return
        s = self.q.state(self.charge.key, self.limit, self.ref.window)
        assert s.used == self.ref.used(self.clock.now()), (s, self.ref.units)


QuotaMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestQuotaMachine = QuotaMachine.TestCase


def _random_walk(seed: int, limit: int, steps: int) -> None:
    """Large rings (the machine above keeps N small): a seeded walk of takes, clock moves and
    refunds, the stored count checked against the reference after every step."""
    import random

    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="stockade-quota-big-"))
    clock = ManualClock(T0)
    q = QuotaStore(tmp / "host.db", clock)
    ref = Reference(limit)
    charge = Charge("app:x:users.create", limit, W)
    made: list[Reservation] = []
    try:
        for i in range(steps):
            roll = rng.random()
            if roll < 0.6:
                with q.store.transaction() as c:
                    got, states = reserve_in(c, [charge], f"op{i}", clock.now())
                assert isinstance(got, Reservation) == ref.reserve(clock.now(), f"op{i}")
                assert states[0].used == ref.used(clock.now()), (i, states)
                if isinstance(got, Reservation):
                    made.append(got)
            elif roll < 0.8:
                clock.advance(rng.choice([0.0, 0.01, 0.1, 0.7, 3.0, 10.0]))
            elif roll < 0.85:
                clock.set(clock.now() - rng.choice([0.5, 5.0]))
            elif made:
                r = made.pop(rng.randrange(len(made)))
                q.refund(r)
                ref.refund(r.op_id)
            s = q.state(charge.key, limit, W)
            assert s.used == ref.used(clock.now()), (i, s)
    finally:
        q.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_large_rings_count_exactly() -> None:
    for seed, limit in ((1, 100), (2, 257), (3, 1000)):
        _random_walk(seed, limit, 600)


def test_a_charges_kept_count_agrees_with_the_binary_search_whatever_happens() -> None:
    """The count a charge reports (kept on the key, `quota._counted`) against the ring's own
    binary search (`state_in`) in the same transaction, through takes, clock moves both ways,
    refunds (newest and not), limits raised past the ring and windows changed by a policy."""
    import random

    from host.ledger.quota import state_in

    for seed in range(4):
        rng = random.Random(seed)
        tmp = Path(tempfile.mkdtemp(prefix="stockade-quota-kept-"))
        clock = ManualClock(T0)
        q = QuotaStore(tmp / "host.db", clock)
        limit, window, made = 3, W, list[Reservation]()
        try:
            for i in range(500):
                roll = rng.random()
                if roll < 0.55:
                    charge = Charge("app:x:users.create", limit, window)
                    with q.store.transaction() as c:
                        before = state_in(c, charge.key, limit, window, clock.now()).used
                        got, states = reserve_in(c, [charge], f"op{i}", clock.now())
                    taken = isinstance(got, Reservation)
                    assert states[0].used == before + taken, (seed, i, before, states)
                    if taken:
                        made.append(got)  # type: ignore[arg-type]
                elif roll < 0.75:
                    clock.advance(rng.choice([0.0, 0.5, 2.0, 4.0, 10.0, 31.0]))
                elif roll < 0.8:
                    clock.set(clock.now() - rng.choice([0.5, 5.0]))
                elif roll < 0.9 and made:
                    q.refund(made.pop(rng.choice([-1, rng.randrange(len(made))])))
                elif roll < 0.95:
                    limit = rng.choice([1, 2, 3, 5, 8])
                else:
                    window = rng.choice([W, 4.0, 30.0])
        finally:
            q.close()
            shutil.rmtree(tmp, ignore_errors=True)
