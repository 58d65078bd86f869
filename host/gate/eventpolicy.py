"""Which apps the operator's policy lets an event reach, decided once per revision and install.

An event carries data the app could otherwise only read through the gate, so it reaches an app
only when the policy permits the app every bridge action the event's data amounts to
(`EventSpec.amounts_to`, decided by `policies.events.decide_event`); grants alone were never
enough (DESIGN rule 7). A security boundary: `Host._receivers` asks this before it puts an app
among an event's receivers, and `message.pre_send` hooks are chosen the same way.

Off the hot path: the host caches each event's receiver list (one dict look-up a dispatch) and
drops it when the policy object changes (a reload by `host.gate.policywatch` swaps it whole) or
the running set changes. Under it, this cache keeps each decision per (policy, app, install,
grants, event), so a receiver list rebuilt after an install change decides only what is new.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

from host.apps.installs import InstallRecord
from policies.events import decide_event
from policies.policy import Policy
from policies.types import Decision
from policies.vocabulary import EVENTS

# Decisions kept for one policy revision. Guards: memory on a host whose installs keep
# changing grants (rule 13); past it the cache starts again, which costs only re-deciding.
MAX_DECISIONS = 4096

_Key = tuple[str, str, frozenset[str], str]


class Receiver(Protocol):
    @property
    def install(self) -> InstallRecord: ...


class Named(Protocol):
    @property
    def name(self) -> str: ...


J = TypeVar("J", bound=Named)


class Dropper(Protocol):
    def drop(self, job: Any, why: str, /) -> None: ...


R = TypeVar("R", bound=Receiver)
D = TypeVar("D", bound=Dropper)


class EventPolicy:
    """The policy's answer for (install, event), cached per policy object."""

    def __init__(self) -> None:
        self._policy: Policy | None = None
        self._decisions: dict[_Key, Decision] = {}

    def decide(self, policy: Policy, install: InstallRecord, event: str) -> tuple[Decision, bool]:
        """(the decision, whether it was made now rather than found in the cache)."""
        decisions = self._decisions
        if policy is not self._policy or len(decisions) >= MAX_DECISIONS:
            # A new dict, never cleared in place: a caller deciding under the old policy
            # stores into the dict it started from, which is no longer this one.
            decisions = self._decisions = {}
            self._policy = policy
        key = (install.app_id, install.install_id, install.grants, event)
        found = decisions.get(key)
        if found is not None:
            return found, False
        found = decisions[key] = decide_event(policy, install.grants, install.app_id,
                                              install.install_id, event)
        return found, True

    def receivers(self, policy: Policy, event: str,
                  candidates: Iterable[R]) -> tuple[tuple[R, ...], list[tuple[R, str]]]:
        """The candidates (apps that declared `event` and hold its grants) the policy lets it
        reach, and each refused one whose refusal was decided just now, with a note for its
        log (said once per policy revision, install and event)."""
        kept: list[R] = []
        notes: list[tuple[R, str]] = []
        for runner in candidates:
            decision, fresh = self.decide(policy, runner.install, event)
            if decision.allowed:
                kept.append(runner)
            elif fresh:
                notes.append((runner, f"events {event} are not delivered to this app under "
                                      f"policy revision {policy.revision}: {decision.message}"))
        return tuple(kept), notes

    def carry(self, policy: Policy, install: InstallRecord,
              carried: tuple[D, list[J]] | None) -> tuple[D, list[J]] | None:
        """An app continuing in a new runner: of its old runner's queued events, those the
        policy still lets reach it; the others are dropped (`policy`) by the old runner, so a
        restart never carries an event past a policy narrowed meanwhile."""
        if carried is None:
            return None
        old, jobs = carried
        kept: list[J] = []
        for job in jobs:
            # Not an event (a hook): left to the hand-over's own rule.
            if job.name not in EVENTS or self.decide(policy, install, job.name)[0].allowed:
                kept.append(job)
            else:
                old.drop(job, "policy")
        return old, kept
