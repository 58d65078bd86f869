"""The host log's line for bridge calls a full disk refuses (see `Child._answer`): one line per
`DISK_FULL_LOG_EVERY_S`, with the count of calls refused since the last, never a traceback."""
from __future__ import annotations

import logging
import threading
import time

from sandbox.frames import Call, Reply, WireError

log = logging.getLogger("stockade.child")

# How often a full disk under the host's stores is reported while bridge calls keep meeting it
# (one line, no traceback; the count of calls refused since the last line rides along). Guards
# the host log, usually on that same disk, against a line per call from a busy app.
DISK_FULL_LOG_EVERY_S = 10.0


class _DiskFullNotice:
    """One log line per `DISK_FULL_LOG_EVERY_S` for bridge calls refused by a full disk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0.0
        self._quiet = 0

    def refused(self, action: str) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self._quiet += 1
                return
            quiet, self._quiet, self._next = self._quiet, 0, now + DISK_FULL_LOG_EVERY_S
        more = f" ({quiet} more refused since the last line)" if quiet else ""
        log.error("bridge call %s refused: the host's store is full (disk full)%s; free space "
                  "(`stockade doctor` names the file system)", action, more)


disk_full_notice = _DiskFullNotice()


def disk_full_reply(call: Call) -> Reply:
    """The app's answer for a bridge call a full disk refused, logged as above. Whatever the
    call had committed before the disk filled is settled as rule 9 says (an intent without an
    outcome is reconciled at the next start)."""
    disk_full_notice.refused(call.action)
    return Reply(id=call.id, ok=False, error=WireError(
        code="internal", message=f"{call.action}: refused, the host's store is full (disk full)"))
