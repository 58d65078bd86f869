"""The manifest's "my app user is a livechat agent (in these departments)", done by the host.

At enable, when the install's manifest declares it and the operator granted `livechat.agents`
(the disclosure showed the declaration on that permission), the host makes the app user an
available agent and puts it into the named departments. This is the host acting on the
operator's consent, not an app's bridge call: it is audited as a lifecycle record. It is still
the power of the bridge actions it amounts to (`livechat.add_agent`, `set_agent_status`,
`add_department_agent` on the app's own user), so the active policy must permit each, as it
would the app's own call (DESIGN rule 11: no side doors); a refusal is named in the record.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from host.apps.installs import InstallRecord
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.server.errors import ServerError
from host.server.principals import SYSTEM
from host.server.remote.server import Workspace
from policies.engine import decide
from policies.policy import Policy
from policies.types import Request

log = logging.getLogger("stockade.host")


def ensure_app_user_agent(server: Workspace, rec: InstallRecord, ledger: Ledger,
                          policy: Policy, now: float) -> None:
    """Do what the manifest declares and audit it (nothing when it declares nothing)."""
    done = _ensure(server, rec, policy, now)
    if done is not None:
        ledger.append(AuditRecord(kind="lifecycle", app_id=rec.app_id,
                                  install_id=rec.install_id, event="app_user_agent",
                                  detail=done[:500]))


def _refused(policy: Policy, rec: InstallRecord, now: float, action: str,
             args: Mapping[str, Any]) -> str | None:
    """The policy's refusal of `action` on the app's own user, or None when it permits it."""
    facts = {"target_is_own_app_user": True, "target_created_by_app": None}
    d = decide(policy, rec.grants, Request(rec.app_id, rec.install_id, action, args, facts, now))
    return None if d.allowed else f"{action}: {d.message} [{d.code}]"


def _ensure(server: Workspace, rec: InstallRecord, policy: Policy,
            now: float) -> str | None:
    """What was done, or None when the manifest declares nothing. A department that does not
    exist is named in the record, never created."""
    departments = rec.manifest.app_user_agent()
    if departments is None or rec.app_user_id is None:
        return None
    if "livechat.agents" not in rec.grants:
        return "app user not made an agent: livechat.agents is not granted"
    uid = rec.app_user_id
    steps = [("livechat.add_agent", {"user_id": uid}),
             ("livechat.set_agent_status", {"user_id": uid, "status": "available"}),
             *(("livechat.add_department_agent", {"department": dep, "user_id": uid})
               for dep in departments)]
    for action, args in steps:
        why = _refused(policy, rec, now, action, args)
        if why is not None:
            return f"app user not made an agent: the policy refuses {why}"
    try:
        server.livechat_add_agent(SYSTEM, uid)
        server.set_agent_status(uid, "available")
    except ServerError as exc:
        # Said in the record, never raised: the app starts (or not: a deactivated app user gets
        # no token) like any other app. Raised, it ended the host's whole install sync, so no
        # app started after it, an app disabled meanwhile ran on, and `serve` did not start.
        log.warning("app %s: its app user was not made an agent: %s", rec.app_id, exc)
        return f"app user not made an agent: the server refused it: {exc}"
    placed: list[str] = []
    missing: list[str] = []
    for dep in departments:
        try:
            server.add_department_agent(dep, uid)
            placed.append(dep)
        except ServerError:
            missing.append(dep)
    out = f"app user is an available agent; departments: {', '.join(placed) or 'none'}"
    return out + (f"; not found: {', '.join(missing)}" if missing else "")
