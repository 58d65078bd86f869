"""The apps page's rows: an install, its serving host's fresh status and its refusals."""
from __future__ import annotations

import time
from typing import Any

from host.apps.installs import InstallRecord
from host.clock import SystemClock
from host.console import auditview
from host.home import Home
from host.ledger.audit import AuditLog


def refusals_last_hour(home: Home) -> dict[str, int]:
    log = AuditLog(home.host_store, SystemClock())
    try:
        return auditview.refusals_since(log, time.time() - 3600)
    finally:
        log.close()


def app_row(rec: InstallRecord, live: dict[str, Any] | None, refusals: int) -> dict[str, Any]:
    # A crash-loop stop is kept in the install record: shown with no host serving too.
    crashed = rec.enabled and bool(rec.crash_stop)
    state = "disabled" if not rec.enabled else "crashed" if crashed else str(
        (live or {}).get("state", "not serving"))
    return {"install_id": rec.install_id, "app_id": rec.app_id, "name": rec.manifest.name,
            "version": rec.version, "enabled": rec.enabled, "state": state, "crashed": crashed,
            "why": rec.disabled_reason or (rec.crash_stop if crashed else "")
            or (live or {}).get("last_error") or "",
            # the dead child's stderr: the app's words, shown apart and marked as its own
            "crash": "" if rec.disabled_reason else str((live or {}).get("last_crash") or ""),
            "restarts": (live or {}).get("restarts", 0), "drops": (live or {}).get("dropped", 0),
            "refusals": refusals}
