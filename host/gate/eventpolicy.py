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

A payload key that is a read of its own (`EventSpec.withheld`: a message event's room) reaches
only the receivers the policy permits that read; the others get it as None (`withheld`,
`payload_for`). A queued event carrying such a key is decided again like the event itself
(`still_allowed`), so a reload that refuses the read drops it rather than delivering it.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar

from host.apps.installs import InstallRecord
from policies.events import decide_event, held, strip, withheld_keys
from policies.policy import Policy
from policies.types import Decision
from policies.vocabulary import EVENTS, WITHHOLDING

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

    @property
    def payload(self) -> dict[str, Any]: ...


J = TypeVar("J", bound=Named)


class Dropper(Protocol):
    def drop(self, job: Any, why: str, /) -> None: ...


R = TypeVar("R", bound=Receiver)
D = TypeVar("D", bound=Dropper)


class EventPolicy:
    """The policy's answer for (install, event), cached per policy object."""

    def __init__(self) -> None:
        # (policy, its decisions, its withheld keys), swapped whole, never changed in place
        # but by adding: a thread deciding under one policy object stores into that object's
        # own dicts, never into another's (two fields assigned one after the other let a
        # decision made under the old policy land in the new policy's cache).
        self._state: tuple[Policy | None, dict[_Key, Decision], dict[_Key, frozenset[str]]] = (
            None, {}, {})

    def _caches(self, policy: Policy) -> tuple[dict[_Key, Decision],
                                                dict[_Key, frozenset[str]]]:
        state = self._state
        if state[0] is not policy or len(state[1]) + len(state[2]) >= MAX_DECISIONS:
            state = self._state = (policy, {}, {})
        return state[1], state[2]

    def decide(self, policy: Policy, install: InstallRecord, event: str) -> tuple[Decision, bool]:
        """(the decision, whether it was made now rather than found in the cache)."""
        decisions, _ = self._caches(policy)
        key = (install.app_id, install.install_id, install.grants, event)
        found = decisions.get(key)
        if found is not None:
            return found, False
        found = decisions[key] = decide_event(policy, install.grants, install.app_id,
                                              install.install_id, event)
        return found, True

    def withheld(self, policy: Policy, install: InstallRecord, event: str) -> frozenset[str]:
        """The payload keys of `event` this install gets as None (`EventSpec.withheld`)."""
        spec = EVENTS.get(event)
        if spec is None or not spec.withheld:
            return frozenset()
        _, cache = self._caches(policy)
        key = (install.app_id, install.install_id, install.grants, event)
        found = cache.get(key)
        if found is None:
            found = cache[key] = withheld_keys(policy, install.grants, install.app_id,
                                               install.install_id, event)
        return found

    def payload_for(self, policy: Policy, install: InstallRecord, event: str,
                    payload: dict[str, Any]) -> dict[str, Any]:
        """`payload` as this install may see it: the keys it may not read set to None."""
        return strip(payload, self.withheld(policy, install, event))

    def payloads(self, policy: Policy, event: str, receivers: Sequence[R],
                 payload: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Each receiver's own payload (`payload_for`), or None when `event` withholds nothing
        (all share `payload`)."""
        if event not in WITHHOLDING:
            return None
        return [self.payload_for(policy, r.install, event, payload) for r in receivers]

    def admitted(self, policy: Policy, install: InstallRecord, event: str
                 ) -> frozenset[str] | None:
        """None when `policy` keeps `event` from `install`, else the keys it gets as None
        (both cached per revision: asked before each pre-send hook of a chain)."""
        if not self.decide(policy, install, event)[0].allowed:
            return None
        return self.withheld(policy, install, event)

    def still_allowed(self, policy: Policy, install: InstallRecord, event: str,
                      payload: dict[str, Any]) -> bool:
        """Whether a queued `event` (decided under another policy, or for another install
        record) may still reach `install` as it stands: the event allowed, and no key it
        carries that the install may no longer read."""
        if not self.decide(policy, install, event)[0].allowed:
            return False
        return not any(held(payload, k) for k in self.withheld(policy, install, event))

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
            if job.name not in EVENTS or self.still_allowed(policy, install, job.name,
                                                            job.payload):
                kept.append(job)
            else:
                old.drop(job, "policy")
        return old, kept
