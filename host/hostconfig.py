"""How a `Host` runs (`host.runtime`): confinement, deadlines, pinning, the lease's beat.

Its own module so the host's wiring stays readable; `host.runtime` re-exports it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from host.bridges.httpout import TIMEOUT_S
from host.ledger.storelease import SWEEP_INTERVAL_S
from host.supervise.child import ChildLimits

TimeoutMode = Literal["fail_closed", "fail_open"]


@dataclass
class HostConfig:
    degraded: bool = False  # run even when a confinement layer is missing (says which)
    use_zygote: bool = True
    # Confined children kept forked ahead of need (zygote only; see `host.supervise.prefork`):
    # an app's start skips fork and confinement. Each costs one idle child's memory.
    prefork: int = 2
    limits: ChildLimits = field(default_factory=ChildLimits)
    event_deadline_s: float = 5.0  # each post-event handler
    pre_send_deadline_s: float = 1.0  # each app's pre-send hook
    # What a pre-send hook that times out (or crashes) means: fail_closed prevents the message,
    # fail_open lets it through. Either way the timeout is audited.
    pre_send_timeout: TimeoutMode = "fail_closed"
    audit_reads: bool = True
    group_reads: bool = True  # group-commit reads' records (rule 9; off: the bench's A/B)
    resolver_overrides: Mapping[str, str] = field(default_factory=dict)
    http_deadline_s: float = TIMEOUT_S  # one outbound HTTP request, all hops and bytes
    watch: bool = True
    # Tune the garbage collector at start (`tune_gc`); off for embedders that manage it.
    tune_gc: bool = True
    # An app's child and its runner thread on one core (`host.supervise.affinity`, only where
    # hand-offs sleep): for the rest of a job once it made many bridge calls (`pin_bursts`),
    # or always (`pin_apps`, `serve --pin-apps`: bridge calls ~40 % faster on 2 cores, a
    # REST-heavy workspace ~20 % more host CPU; docs/BENCH.md, "Pinned bursts").
    pin_apps: bool = False
    pin_bursts: bool = True
    # Every thread of the host process on one core, what it starts on every core (only where
    # hand-offs sleep; `host.supervise.affinity`, docs/BENCH.md "The host's threads on one
    # core"): the interpreter lock then changes hands without waking the other core. It moves
    # every thread of the process, the embedder's too, until `stop`: off for embedders whose
    # own threads need the other cores.
    host_core: bool = True
    lease_sweep_s: float = SWEEP_INTERVAL_S  # a shared store lease's beat (`storelease`)


__all__ = ["HostConfig", "TimeoutMode"]
