"""The app's answer for a bridge call a full disk refuses (see `Child._answer`), logged through
the process's one disk-full line (`host.store.diskfull`: one line per window, never a
traceback)."""
from __future__ import annotations

from host.store.diskfull import disk_full_notice
from sandbox.frames import Call, Reply, WireError


def disk_full_reply(call: Call) -> Reply:
    """The app's answer for a bridge call a full disk refused, logged as above. Whatever the
    call had committed before the disk filled is settled as rule 9 says (an intent without an
    outcome is reconciled at the next start)."""
    disk_full_notice.refused(f"bridge call {call.action}")
    return Reply(id=call.id, ok=False, error=WireError(
        code="internal", message=f"{call.action}: refused, the host's store is full (disk full)"))
