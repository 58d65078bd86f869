"""Which publisher an app id belongs to: the key that first installed it, kept after uninstall.

Why: ownership (the users an app created, kept at uninstall), policy rules and quotas are keyed
on the app id, and the id is a name the package chose for itself. Without this binding a package
from another publisher that reused an uninstalled app's id inherited those users and rules
(DESIGN rule 11: ownership follows the install lineage and the publisher key). So the first
install of an id binds it to its publisher: the verified key id when the package is signed by a
trusted key, else `UNVERIFIED` (an unsigned package, or one signed by a key nobody trusts, proves
no identity). A later install or update of the same id with another binding is a different app
and is refused, unless the operator transfers the id explicitly (`--transfer-publisher`), which
rebinds it and is audited. The binding is a security boundary, not a convenience.

`UNVERIFIED` names no publisher, so two ids bound to it are not one lineage: a new install of an
id first installed unverified (uninstalled since, its users perhaps kept) needs the same explicit
transfer as a change of publisher — nothing proves the new unsigned package comes from whoever
wrote the first. Updates of a running install keep its lineage (the operator approves each).
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from host.store import SchemaItem, StoreTarget, ensure_schema, open_store

# `bound_at` is wall time for the operator's eyes only, never a decision input (so not injected).

# The binding of an id first installed from a package whose publisher nothing verified.
UNVERIFIED = "unverified"

SCHEMA_COMPONENT = "lineage"
SCHEMA_VERSION = 1
_DDL = (
    "CREATE TABLE IF NOT EXISTS app_lineage (app_id TEXT PRIMARY KEY, publisher TEXT NOT NULL,"
    " bound_at REAL NOT NULL, transfers INTEGER NOT NULL DEFAULT 0)"
)
DDL: tuple[SchemaItem, ...] = (_DDL,)


def binding_of(publisher: Mapping[str, Any]) -> str:
    """The lineage binding of a signature check (`SignatureCheck.to_dict()`): `key:<kid>` only
    when the signature verified against a trusted key."""
    kid = publisher.get("kid")
    if publisher.get("status") == "trusted" and isinstance(kid, str) and kid:
        return f"key:{kid}"
    return UNVERIFIED


def lineage_problem(app_id: str, bound: str, new: str) -> str:
    """Why a package needs `--transfer-publisher` for this id (see `needs_transfer`)."""
    if bound == new:  # both unverified
        return (f"app id {app_id!r} was installed before from a package no key vouched for, "
                "and nothing proves this unverified package comes from the same author: it "
                "may be a different app")
    return (f"app id {app_id!r} belongs to {describe(bound)}, and this package comes from "
            f"{describe(new)}: it is a different app")


def describe(binding: str) -> str:
    """Plain words for a binding (for refusals and the diff)."""
    if binding == UNVERIFIED:
        return "no verified publisher (unsigned or signed by an untrusted key)"
    return f"publisher key {binding.removeprefix('key:')}"


def needs_transfer(bound: str | None, new: str, *, fresh: bool) -> bool:
    """Whether a package with binding `new` takes over an id bound to `bound` (None: never
    installed) only by an explicit transfer. `fresh`: a new install, not an update of one."""
    if bound is None:
        return False
    return bound != new or (fresh and new == UNVERIFIED)


class LineageError(Exception):
    """A package claims an app id bound to another publisher (a different app)."""


@dataclass(frozen=True)
class Transfer:
    """An operator-approved rebinding (the caller audits it)."""

    app_id: str
    old: str
    new: str


class Lineage:
    """The `app_lineage` table in the host's store. Every check and bind is one write
    transaction (the store's write lock), so it never interleaves with another process's."""

    def __init__(self, target: StoreTarget) -> None:
        self.store = open_store(target)
        ensure_schema(self.store, SCHEMA_COMPONENT, SCHEMA_VERSION, DDL)
        if self.store.has_table("install_installs"):
            with self._tx() as c:
                # Installs made before this table existed: bind them to their current publisher.
                keep_binding_in(c, None)

    def _tx(self) -> Any:
        return self.store.transaction()

    def close(self) -> None:
        self.store.close_all()

    def bound(self, app_id: str) -> str | None:
        """The binding of `app_id`, or None if it was never installed."""
        with self._tx() as c:
            row = c.execute("SELECT publisher FROM app_lineage WHERE app_id = ?",
                            (app_id,)).fetchone()
        return None if row is None else str(row[0])

    def claim(self, app_id: str, publisher: Mapping[str, Any], *, transfer: bool = False,
              fresh: bool = False) -> Transfer | None:
        """Bind `app_id` to this publisher, or check it is bound to it already. Raises
        LineageError when another publisher holds the id (`needs_transfer`; `fresh` for a new
        install) and `transfer` is not set; with `transfer`, rebinds and returns the
        `Transfer` for the caller to audit."""
        with self._tx() as c:
            return claim_in(c, app_id, publisher, transfer=transfer, fresh=fresh)

    def plan(self, app_id: str, publisher: Mapping[str, Any], *, transfer: bool = False,
             fresh: bool = False) -> tuple[str | None, Transfer | None]:
        """What `claim` would do, changing nothing: (the id's binding now, the transfer it
        would make). Raises LineageError as `claim` does. An install plans first (to audit a
        transfer before it) and claims inside the transaction that writes its row
        (`claim_in(..., expect=)`), so an install that fails binds nothing."""
        with self._tx() as c:
            row = c.execute("SELECT publisher FROM app_lineage WHERE app_id = ?",
                            (app_id,)).fetchone()
        old = None if row is None else str(row[0])
        return old, _decide(app_id, old, binding_of(publisher), transfer=transfer, fresh=fresh)


_ANY = object()


def _decide(app_id: str, old: str | None, new: str, *, transfer: bool,
            fresh: bool) -> Transfer | None:
    if old is None or not needs_transfer(old, new, fresh=fresh):
        return None
    if not transfer:
        raise LineageError(lineage_problem(app_id, old, new) + ", and it would take "
                           "over the users, rules and quotas of the first one")
    return Transfer(app_id, old, new)


def claim_in(c: Any, app_id: str, publisher: Mapping[str, Any], *, transfer: bool = False,
             fresh: bool = False, expect: object = _ANY) -> Transfer | None:
    """`Lineage.claim` inside the caller's write transaction `c`. `expect`: the binding the
    caller planned with (`Lineage.plan`); LineageError when it moved since (the transfer the
    caller audited would not be the one made)."""
    c.execute(_DDL)
    new = binding_of(publisher)
    row = c.execute("SELECT publisher FROM app_lineage WHERE app_id = ?", (app_id,)).fetchone()
    old = None if row is None else str(row[0])
    if expect is not _ANY and old != expect:
        raise LineageError(f"the binding of app id {app_id!r} changed meanwhile (another "
                           "operator's install or transfer): nothing changed; run it again")
    moved = _decide(app_id, old, new, transfer=transfer, fresh=fresh)
    if old is None:
        c.execute("INSERT INTO app_lineage (app_id, publisher, bound_at) VALUES (?, ?, ?)",
                  (app_id, new, time.time()))
    elif moved is not None:
        c.execute("UPDATE app_lineage SET publisher = ?, bound_at = ?, "
                  "transfers = transfers + 1 WHERE app_id = ?", (new, time.time(), app_id))
    return moved


def keep_binding_in(c: Any, install_id: str | None) -> None:
    """Bind the app id of `install_id` (every install when None) to its current publisher if
    it has no binding yet, inside the caller's transaction. An uninstall calls this before the
    install row goes, so an install made before bindings existed is not forgotten with it."""
    c.execute(_DDL)
    rows = c.execute(
        "SELECT app_id, publisher, installed_at FROM install_installs"
        " WHERE CAST(? AS TEXT) IS NULL OR install_id = ?", (install_id, install_id)).fetchall()
    for app_id, publisher, installed_at in rows:
        try:
            binding = binding_of(json.loads(publisher))
        except (ValueError, AttributeError):  # an unreadable record proves no publisher
            binding = UNVERIFIED
        c.execute("INSERT OR IGNORE INTO app_lineage (app_id, publisher, bound_at)"
                  " VALUES (?, ?, ?)", (app_id, binding, installed_at))
