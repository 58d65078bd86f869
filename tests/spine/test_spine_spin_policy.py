"""The adaptive spin decision (`sandbox.wire.SpinPolicy`) and the outcome it learns from.

Both ends of a channel ask a SpinPolicy whether their next wait spins. What must hold: no spin
at all on a machine with too few cores; spinning stops once spins keep missing their frame;
probes keep measuring while it is off, and spinning comes back when they catch frames again.
The decisions are fed outcomes here, so nothing depends on timing.
"""
from __future__ import annotations

import os
import threading
import time

from sandbox.wire import (
    SPIN_MIN_CPUS,
    SPIN_PROBE_EVERY,
    FrameReader,
    SpinPolicy,
    encode,
    write_all,
)

BUDGET = 150_000


def _budgets(policy: SpinPolicy, n: int) -> list[int]:
    return [policy.budget() for _ in range(n)]


def test_too_few_cores_never_spins_whatever_the_outcomes() -> None:
    policy = SpinPolicy(BUDGET, cpus=SPIN_MIN_CPUS - 1)
    assert _budgets(policy, 3 * SPIN_PROBE_EVERY) == [0] * (3 * SPIN_PROBE_EVERY)
    for _ in range(50):
        policy.record(True)
    assert policy.budget() == 0
    assert not policy.spinning


def test_enough_cores_spin_while_spins_catch_their_frame() -> None:
    policy = SpinPolicy(BUDGET, cpus=SPIN_MIN_CPUS)
    for _ in range(200):
        assert policy.budget() == BUDGET
        policy.record(True)
    assert policy.spinning


def test_spins_that_keep_missing_turn_spinning_off_then_only_probes_spin() -> None:
    policy = SpinPolicy(BUDGET, cpus=8)
    misses = 0
    while policy.budget():
        policy.record(False)
        misses += 1
        assert misses < 100, "spinning never turned off"
    assert 2 <= misses <= 32  # a streak of misses, not one unlucky wait, turns it off
    assert not policy.spinning
    # Off: one wait in SPIN_PROBE_EVERY spins (counting the wait that found it off above).
    budgets = [0, *_budgets(policy, 2 * SPIN_PROBE_EVERY - 1)]
    assert budgets.count(BUDGET) == 2
    assert budgets[SPIN_PROBE_EVERY - 1] == BUDGET and budgets[-1] == BUDGET


def test_one_miss_among_catches_keeps_spinning() -> None:
    policy = SpinPolicy(BUDGET, cpus=8)
    for i in range(300):
        assert policy.budget() == BUDGET
        policy.record(i % 4 != 0)  # three in four caught
    assert policy.spinning


def test_probes_that_catch_their_frame_turn_spinning_back_on() -> None:
    policy = SpinPolicy(BUDGET, cpus=8)
    for _ in range(100):
        if policy.budget():
            policy.record(False)
    assert not policy.spinning
    waits = 0
    while not policy.spinning:
        if policy.budget():
            policy.record(True)
        waits += 1
        assert waits < 20 * SPIN_PROBE_EVERY, "probes never turned spinning back on"
    assert policy.budget() == BUDGET


def test_the_reader_says_whether_its_spin_caught_the_frame() -> None:
    """`FrameReader.caught`, the outcome both ends record: True when the frame was there
    within the spin budget, False when the budget ran out and the reader slept."""
    r, w = os.pipe()
    reader = FrameReader(r, spin=True)
    write_all(w, encode(b"now"))
    assert reader.read(spin_ns=1_000_000) == b"now"
    assert reader.caught

    def late() -> None:
        time.sleep(0.05)
        write_all(w, encode(b"late"))

    t = threading.Thread(target=late, daemon=True)
    t.start()
    assert reader.read(spin_ns=10_000) == b"late"
    assert not reader.caught
    t.join()
    write_all(w, encode(b"again"))
    assert reader.read(spin_ns=1_000_000) == b"again"
    assert reader.caught
    os.close(w)
    os.close(r)
