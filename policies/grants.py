"""The gate's grant step (step 3 of `host/gate/gate.py`), pure so the gate, `stockade can-i`
and the app-author harness (`sandbox/harness.py`, which never imports `host`) refuse alike.

A call passes when its permission is in the session's claims and in the install's current
grant (for a REST route with no bridge action that reads what a permission guards, that
permission too: `policies.restmap.READS`), and every role it names was declared for that
permission in the app's manifest (when the manifest declares any for it): the operator
consented to the declared roles only.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from policies.restmap import route_label, route_reads
from policies.vocabulary import ActionSpec

# The manifest's roles declared on a permission, or None when it declares none (no narrowing):
# `host.apps.manifest.Manifest.declared_roles`, or the harness's reading of app.toml.
DeclaredRoles = Callable[[str], "Collection[str] | None"]


def undeclared_roles(declared_roles: DeclaredRoles, spec: ActionSpec,
                     args: Mapping[str, Any]) -> list[str]:
    """Roles in the call that the manifest did not declare (when it declares any)."""
    if spec.name in ("roles.assign", "roles.remove"):
        asked: Sequence[object] = [args.get("role")]
    elif spec.name == "users.create":
        asked = roles if isinstance(roles := args.get("roles"), list | tuple) else []
    else:
        return []  # no role in the call: the manifest is not asked (every read comes here)
    declared = declared_roles(spec.permission)
    if declared is None:
        return []
    # Strings only: the engine's argument check refuses (and audits) any other shape.
    return [r[:64] for r in asked if isinstance(r, str) and r not in declared]


def grant_refusal(app_id: str, perms: Collection[str], grants: Collection[str],
                  declared_roles: DeclaredRoles, spec: ActionSpec,
                  args: Mapping[str, Any]) -> str:
    """A `permission_denied` message, or "" when the call passes: the permission in the
    token's claims `perms` and the install's current `grants`, then the declared roles."""
    if spec.permission not in perms or spec.permission not in grants:
        return (f"app {app_id!r} lacks permission {spec.permission!r} needed for {spec.name}: "
                "the app's manifest must ask for it and the operator must grant it "
                f"(`stockade app consent {app_id}`)")
    if spec.name == "rest.call":
        for need in route_reads(args.get("method"), args.get("route")):
            if need not in perms or need not in grants:
                return (f"app {app_id!r} lacks permission {need!r} needed for "
                        f"{route_label(args)}: that route reads what {need!r} guards, as the "
                        "bridge's own reads need it; the app's manifest must ask for it and "
                        f"the operator must grant it (`stockade app consent {app_id}`)")
    undeclared = undeclared_roles(declared_roles, spec, args)
    if undeclared:
        return (f"{spec.name}: role(s) {', '.join(undeclared)} not declared for "
                f"{spec.permission!r} in the app's manifest (the operator consented to the "
                "declared roles only)")
    return ""
