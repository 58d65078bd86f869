"""What an app's restart (an update, new settings, a new token) does with the events still
queued in the runner it leaves: the new runner takes each it still handles, the old one drops
the rest, and what reaches the old one later follows the new (`AppRunner.succeeded_by`)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from host.supervise.jobs import Job
    from host.supervise.supervisor import AppRunner


def hand_over(carried: tuple[AppRunner, list[Job]] | None, new: AppRunner) -> None:
    """Hand an old runner's queued events (`AppRunner.take_queued`) to `new`, each only if the
    new version still handles it with the grants it needs (as the host's receiver list would
    pick it); the rest are dropped as `not_handled`."""
    old, jobs = carried or (new, [])
    for job in jobs:
        if new.handles(job.name):
            new.enqueue(job)
        else:
            old.drop(job, "not_handled")
    if carried is not None:
        old.succeeded_by(new)  # what still reaches the old runner follows (`enqueue`)
