"""The `rest.call` host action: a REST route that amounts to no bridge action, run by the
server's own dispatcher as the app's server user (or the identity the operator consented to).

The gate has already decided the call (`host/gate/restbridge.py`: policy, quota, audit); this
only picks the identity the route runs as, so that the route's own role checks see that user's
roles and never a host-wide admin's.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from host.apps.consent import verify_install
from host.apps.installs import InstallStore
from host.errors import GateError
from host.gate.gate import Session
from host.keys.keyring import Keyring
from host.server.errors import ServerError
from host.server.principals import SYSTEM
from host.server.remote.server import RemoteServer, Workspace


def rest_call(server: Workspace, installs: InstallStore, keyring: Keyring, session: Session,
              args: dict[str, Any], op_id: str | None, facts: Mapping[str, Any]) -> Any:
    """Run the decided route as the app's own server user, or as the user the operator named
    for this app at consent (`facts["rest_as"]`, from the signed consent)."""
    from host.server.rest import RestDispatcher  # starlette: only when an app calls a route

    if isinstance(server, RemoteServer):
        raise GateError("invalid_argument", "rest.call: against a Rocket.Chat workspace "
                        "only routes that amount to a bridge action are served (this route "
                        "has none; see docs/ROCKETCHAT.md)")
    identity = session.caller.app_user_id
    named = facts.get("rest_as")
    if isinstance(named, str) and named:
        # Another identity's powers only on the operator's signed word: re-check the consent
        # now (a raw edit of host.db must not name an admin for one call).
        rec = installs.get(session.install_id)
        # `verify_install`, as every load of a record for use: the install's latest consent
        # (an older one that named an identity, put back after the operator dropped it, is
        # refused here too), and an enabled row the operator left disabled is no consent.
        if rec is None or rec.rest_as != named or not verify_install(
                rec, installs, keyring, disable=False).ok:
            raise GateError("permission_denied", "rest.call: the REST identity is not "
                            "the one the operator consented to")
        try:
            identity = server.users_get_by_username(SYSTEM, named)["id"]
        except ServerError:
            raise GateError("permission_denied", f"rest.call: the REST identity {named!r} "
                            "named at consent is not a server user") from None
    if not identity:
        raise GateError("permission_denied", "rest.call: this install has no app user "
                        "to act as (reinstall the app)")
    method = str(args["method"]).upper()
    payload = args.get("body")
    # GET routes take their parameters as a query; the policy saw the plain route
    query = ({str(k): query_text(v) for k, v in (payload or {}).items() if v is not None}
             if method == "GET" else {})
    status, body = RestDispatcher(server).call(
        identity, method, str(args["route"]), query,
        None if method == "GET" else payload, caller=session.caller, op_id=op_id)
    return {"status": status, "body": body}


def query_text(value: Any) -> str:
    """One GET parameter as the REST API reads its query: text as it is, `true`/`false`, and a
    number, object or list as JSON (`fields={"customFields":1}`). Python's `str` gave `True`
    and `{'customFields': 1}`, which the routes refuse as malformed."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
