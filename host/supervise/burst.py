"""A job's burst: after `BURST_CALLS` bridge calls its pair is pinned (`affinity.Affinity`),
and the pin is given back as soon as the child computes instead of calling.

Why the pin ends early: a burst with other events running puts its child on the runner's core,
which is the host's own core once the host's threads are placed there (the hand-offs are then
direct switches). A child pinned there that stops calling and computes holds the core every
thread of the host shares: an app that made 16 calls (refused ones count too) and then looped
until its deadline halved the host's throughput for the rest of its event, every event. So
while such a pair is pinned, the runner waits at most `BURST_PATIENCE_MS` for the child's next
frame before giving the child back every core (`FrameReader.patience`: the wait the read makes
anyway, given a timeout, no extra system call). A handler calling in a loop keeps its pin; one
that computes for longer between calls gains nothing from it. Only a call renews the patience
(`kept`, `FrameReader.patience_by`): an escaped child's empty Log frames, one a millisecond,
kept it unspent for the rest of the job. A burst alone is not cut short:
its child runs on the other core, never on the host's.

A child being started is on the host's core too (`Affinity.starting`), and its load runs the
app's module code: an app computing at import held that core for as long as its load took
(up to `LOAD_TIMEOUT_S`, each start, without escaping its runtime). Its load keeps the host's
core for at most `BURST_PATIENCE_MS` in all (`patient_load`); a start takes ~3 ms.
"""
from __future__ import annotations

import time
from functools import partial

from host.supervise.affinity import Affinity
from host.supervise.child import Child
from host.supervise.watchdog import running_events

# How long a child pinned beside the host's threads may go without a frame before its pin is
# given back (ms, `select.poll`'s unit, its smallest wait). Guards the host's core: an app
# holds it at most this long per bridge call, and its quota bounds its calls (the shipped
# default: 600 a minute, so at most ~3 s of the host's core a minute).
BURST_PATIENCE_MS = 5
_PATIENCE_NS = BURST_PATIENCE_MS * 1_000_000


def start_burst(affinity: Affinity, runner: object, child: Child) -> Child | None:
    """Pin `runner`'s thread and `child` for the rest of the job (on the runner's thread);
    the child pinned, or None when nothing was. Alone, the pair goes to two cores and both ends
    poll (`Child.burst_apart`); with other events running, to one core."""
    alone = running_events.count == 1
    if not affinity.burst(runner, child.app_pid(), apart=alone):
        return None
    child.burst_apart = alone
    if not alone:
        child.reader.patience = (BURST_PATIENCE_MS, partial(_give_back, affinity, child))
        kept(child)
    return child


def kept(child: Child) -> None:
    """`child` made a call (its answer is on its way): its pin's patience starts again."""
    child.reader.patience_by = time.monotonic_ns() + _PATIENCE_NS


def end_burst(affinity: Affinity, child: Child) -> None:
    """The job ended: the pair back where it was (on the runner's thread)."""
    child.burst_apart = False
    child.reader.patience, child.reader.patience_by = None, 0
    affinity.unpin(child.app_pid())


def _give_back(affinity: Affinity, child: Child) -> None:
    """The child went `BURST_PATIENCE_MS` without a frame: it computes, so every core for it
    again (on the runner's thread, which `unpin` puts back with the host's threads)."""
    affinity.unpin(child.app_pid())


def patient_load(affinity: Affinity, child: Child) -> None:
    """`child`, started on the host's core, is sent its Load (on the starting thread): it gets
    every core back once its load has taken `BURST_PATIENCE_MS`, whatever frames it sends
    meanwhile (nothing renews it). Not during the handshake, which runs no app code.
    `Host.start_child` clears it (`loaded`)."""
    child.reader.patience = (BURST_PATIENCE_MS, partial(_spread, affinity, child))
    child.reader.patience_by = time.monotonic_ns() + _PATIENCE_NS


def loaded(child: Child) -> None:
    """The start is over (done or failed): the load's patience ends with it."""
    child.reader.patience, child.reader.patience_by = None, 0


def _spread(affinity: Affinity, child: Child) -> None:
    """A loading child took `BURST_PATIENCE_MS`: its app computes at import, so every core for
    it (and for a spawned child's app process, forked by its stand-in)."""
    affinity.spread(child.pid)
    if child.popen is not None:
        affinity.spread(child.app_pid())
