"""Which consent is an install's latest: the freshness half of the consent check.

Every consent the operator gives is kept (`consent_records` is history) and stays validly
signed, so a signature alone says "the operator consented to this once", not "this is what the
operator consents to now". Whoever can write host.db (or the shared store) could point an
install back at an older, wider consent after a revoke, and it would verify.

So each consent carries a per-install sequence number in its signed payload (`seq`: 1 at
install, each later consent one past every number the install had), and `check_consent`
requires the install's consent to be numbered no lower than `latest_seq`, the highest of:
- every consent row kept for the install (a later row means a later consent; deleting rows is
  easy, which is why this is not the only witness);
- every number the audit chain records for the install: the ok `operator.outcome` of each
  install, consent and update names the number of the consent it made (`consent_seq`), and an
  uninstall's one past every consent the install had (its rows, kept as history, then never
  verify again if the install's row is put back). The
  chain is the witness the store cannot rewrite unseen: deleting or editing an anchored record
  breaks it (`audit verify`; a host refuses to start on it), and an appended forgery can only
  raise the bar (a denial of service, which write access gives anyway), never lower it;
- the highest number this process verified for the install (a serving host keeps it, so even
  a chain cut while it serves cannot take it back).
The ok outcome, not the record written before the change: a change that failed leaves that
record naming a number no consent holds, which would disable the app; a change whose outcome
was lost to a crash is one the kept rows still know.

Cost: the lookup runs when an install is loaded or verified, never per bridge call. It reads
operator records only, through a partial index over the audit table (`DDL`): an operator record
opens with `{"actor":` (sorted keys; a decision's `action` sorts first), a test that costs an
insert nothing measurable. The index is this component's schema (`stockade store migrate` on a
shared store; made at first use in a home); without it the lookup is the same, only slower.

A consent made before numbering has no `seq` (read as 0) and the chain names no number for its
install: it verifies as before, and the first consent after it is numbered past it.

The same read gives the install's last switch (`operator.enable` or `operator.disable`), the
witness for an install whose latest consent was made before switches were signed: an enabled
row whose last switch in the chain is a disable was enabled behind the operator
(`consent.verify_install` refuses it as tampered). Since then each switch is a signed consent of
its own (`host/apps/switches.py`), which a record forged after the anchor cannot outweigh.
"""
from __future__ import annotations

import json
import weakref
from contextlib import suppress

from host.apps.installs import InstallStore
from host.store import DB_ERRORS, SchemaItem, Store, StoreError, ensure_schema

SCHEMA_COMPONENT = "consent_seq"
SCHEMA_VERSION = 1
# How every operator record opens (module docstring): the index holds these only, so finding an
# install's consent numbers reads no bridge call's record.
_OPERATOR = '{"actor":%'
DDL: tuple[SchemaItem, ...] = (
    f"CREATE INDEX IF NOT EXISTS audit_operator ON audit(seq) WHERE body LIKE '{_OPERATOR}'",
)
# Largest sequence number read as one: guards the audit record's integer field (and JSON
# readers) against a row that names an absurd number, which would otherwise stop every consent.
MAX_SEQ = 2**53

# Stores whose index this process has made sure of (once each), and per install store the
# highest number this process verified for each install.
_indexed: weakref.WeakSet[Store] = weakref.WeakSet()
_seen: weakref.WeakKeyDictionary[InstallStore, dict[str, int]] = weakref.WeakKeyDictionary()


def payload_seq(payload: bytes | str) -> int | None:
    """The sequence number signed into a consent payload: 0 when it has none (a consent made
    before numbering), None when it is unreadable."""
    try:
        seq = json.loads(payload).get("seq", 0)
    except (ValueError, AttributeError):
        return None
    return seq if type(seq) is int and 0 <= seq < MAX_SEQ else None


def latest_seq(installs: InstallStore, install_id: str) -> int:
    """The number the install's consent must reach (module docstring)."""
    return latest_and_switch(installs, install_id)[0]


def latest_and_switch(installs: InstallStore, install_id: str) -> tuple[int, str | None]:
    """`latest_seq`, and the install's last enable or disable in the chain (`audited_state`)."""
    rows = (payload_seq(r.payload) for r in installs.consent_rows(install_id))
    audited, switch = audited_state(installs.store, install_id)
    return max(max((s for s in rows if s is not None), default=0), audited,
               _seen.get(installs, {}).get(install_id, 0)), switch


def next_seq(installs: InstallStore, install_id: str) -> int:
    """The number of the install's next consent: past every number it had."""
    return latest_seq(installs, install_id) + 1


def remember(installs: InstallStore, install_id: str, seq: int) -> None:
    """This process verified consent number `seq` for the install: nothing lower verifies in
    it again."""
    seen = _seen.setdefault(installs, {})
    seen[install_id] = max(seq, seen.get(install_id, 0))


def audited_seq(store: Store, install_id: str) -> int:
    """The highest consent number the audit chain records for the install (0: none)."""
    return audited_state(store, install_id)[0]


def audited_state(store: Store, install_id: str) -> tuple[int, str | None]:
    """What the audit chain says of the install, in one read of its operator records: the
    highest consent number it records (0: none), and its last switch, `"enable"` or
    `"disable"` (None: never switched). The switch is the operator's record written before
    the change (`operator.enable` / `operator.disable`), not its outcome: a host that sees the
    row change between the two must not take the operator's own enable for a forgery."""
    if not store.has_table("audit"):
        return 0, None
    _ensure_index(store)
    # The index's own predicate, word for word, so both engines use the partial index. On
    # SQLite the body is read as its bytes: a TEXT column holds whatever bytes a writer of
    # host.db put there, and sqlite3 raised out of the fetch on one that is no UTF-8, which
    # stopped every consent check of the install (PostgreSQL refuses such text on the way in).
    column = "CAST(body AS BLOB)" if store.dialect == "sqlite" else "body"
    rows = store.conn().execute(
        f"SELECT {column} FROM audit WHERE body LIKE '{_OPERATOR}' AND body LIKE ?"  # noqa: S608 - constants; the install id is bound
        " ORDER BY seq", (f'%"install_id":"{install_id}"%',)).fetchall()
    best, switch = 0, None
    for (body,) in rows:
        try:
            rec = json.loads(body)  # bytes that are no UTF-8: a ValueError too
        except (ValueError, RecursionError):
            # a forged row nested past the parser's stack, or no text, is no witness; it
            # stopped every consent check of the install
            continue
        if rec.get("install_id") != install_id:
            continue
        kind = rec.get("kind")
        if kind in ("operator.enable", "operator.disable"):
            switch = kind.removeprefix("operator.")
        seq = rec.get("consent_seq")
        if (kind == "operator.outcome" and rec.get("ok") is True and type(seq) is int
                and 0 <= seq < MAX_SEQ):
            best = max(best, seq)
    return best, switch


def _ensure_index(store: Store) -> None:
    """A home's store gets the index at first use (the audit table exists by then); a shared
    store's comes with `stockade store migrate`, as every schema change there does."""
    if store in _indexed:
        return
    _indexed.add(store)
    if store.dialect == "sqlite" and not store.readonly:
        with suppress(StoreError, *DB_ERRORS):  # no index is a slower lookup, never another answer
            ensure_schema(store, SCHEMA_COMPONENT, SCHEMA_VERSION, DDL)
