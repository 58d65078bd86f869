"""The bridge actions the host serves itself rather than the chat server: an app's own stored
data (`persistence.*`), outbound HTTP (`http.request`, each redirect hop decided and charged
again by the gate before it is sent) and REST routes with no bridge action (`rest.call`). The
gate decides, admits and audits each like any other action; these only perform what it
allowed."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from host.apps.installs import InstallStore, installed_in
from host.bridges.httpout import HttpOut
from host.bridges.persistence import PersistenceStore, missing
from host.gate.gate import Gate, HostAction, Session
from host.gate.httpquota import Hop
from host.keys.keyring import Keyring
from host.server.remote.server import Workspace
from host.store import StoreTarget
from host.supervise.restcall import rest_call


class HostServed:
    """One host's served actions and the pooled stores and clients they hold. `gate` is set
    once the gate exists: the gate is built with these actions, and a redirect hop of an
    outbound request is a new request it decides."""

    def __init__(self, store: StoreTarget, http_deadline_s: float, server: Workspace,
                 installs: InstallStore, keyring: Keyring) -> None:
        # a put checks the install in its own transaction (one landing after an uninstall)
        self.persistence = PersistenceStore(store, installed=installed_in)
        self.httpout = HttpOut(http_deadline_s)
        self.gate: Gate | None = None
        self._server, self._installs, self._keyring = server, installs, keyring

    def actions(self) -> dict[str, HostAction]:
        store = self.persistence

        def put(s: Session, a: dict[str, Any], _op: str | None, _f: Mapping[str, Any]) -> Any:
            return store.put(s.install_id, a["key"], a["value"], a.get("association"))

        def get(s: Session, a: dict[str, Any], _op: str | None, _f: Mapping[str, Any]) -> Any:
            value = store.get(s.install_id, a["key"])
            if value is None:
                raise missing(a["key"])
            return value

        def delete(s: Session, a: dict[str, Any], _op: str | None, _f: Mapping[str, Any]) -> Any:
            return store.delete(s.install_id, a["key"])

        def find(s: Session, a: dict[str, Any], _op: str | None, _f: Mapping[str, Any]) -> Any:
            # The stored JSON goes into the reply as it is (`PersistenceStore.find_raw`).
            return [{"key": k, "value": msgspec.Raw(v.encode())}
                    for k, v in store.find_raw(s.install_id, a["association"])]

        return {"http.request": self._http, "rest.call": self._rest, "persistence.put": put,
                "persistence.get": get, "persistence.delete": delete, "persistence.find": find}

    def _http(self, session: Session, args: dict[str, Any], op_id: str | None,
              facts: Mapping[str, Any]) -> Any:
        gate = self.gate
        assert gate is not None, "HostServed.gate is set when the host is built"
        # Each hop past the first: its admission (the first is the call's own, by the gate).
        hops: list[Hop | None] = []

        def check_hop(url: str) -> list[str]:
            if not hops:
                hops.append(None)
                # the addresses the gate decided with: no second lookup (DNS rebinding)
                return list(facts.get("resolved_ips") or [])
            # every redirect is a new request as far as the policy and the quotas are
            # concerned: decided, and charged before it is sent
            hop = gate.check_redirect(session, {**args, "url": url}, len(hops) + 1, op_id)
            hops.append(hop)
            return hop.ips

        def hop_done(sent: bool, error: BaseException | None) -> None:
            hop = hops[-1]
            if hop is not None:
                gate.end_redirect(hop, sent, error)

        return self.httpout.perform(session.install_id, args, check_hop, hop_done)

    def _rest(self, session: Session, args: dict[str, Any], op_id: str | None,
              facts: Mapping[str, Any]) -> Any:
        return rest_call(self._server, self._installs, self._keyring, session, args, op_id,
                         facts)
