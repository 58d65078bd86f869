"""Which capability tokens the host minted, and which of them are revoked for good.

A token is minted per child session (`tokens.issue`) and bound to that channel. The registry in
`host.db` (`token_minted`) records each one by its `jti`, so an operator can list them and
revoke them (`stockade app tokens APP [--revoke JTI | --all]`), and so revocation is durable:

- minting a token for an install revokes every earlier live token of that install minted by the
  same host process (reason `re-minted`): one live token per install per serving host;
- a revoked `jti` never becomes live again: nothing un-revokes a row (a reactivated app user
  gets a *new* token, its old ones stay revoked); a host's own re-minted rows past the
  install's newest `MAX_LISTED` are deleted (their children were replaced: see `minted`);
- the serving host stops a child whose token is revoked (`Host.sync_installs`); the CLI also
  bumps the install's generation, so the gate refuses that child's very next call.

Holds no token body and no secret: only claims a token already shows to whoever holds it.
"""
from __future__ import annotations

import builtins
from dataclasses import dataclass

from host.keys.tokens import Claims
from host.store import SetOnce, StoreTarget, ensure_schema, open_store, table_exists

SCHEMA_COMPONENT = "tokens"
SCHEMA_VERSION = 1
DDL = (
    "CREATE TABLE IF NOT EXISTS token_minted(jti TEXT PRIMARY KEY, app_id TEXT NOT NULL,"
    " install_id TEXT NOT NULL, session_id TEXT NOT NULL, kid TEXT NOT NULL,"
    " generation INTEGER NOT NULL, epoch INTEGER NOT NULL, issued_at REAL NOT NULL,"
    " expires_at REAL NOT NULL, host_id TEXT NOT NULL, revoked_at REAL, reason TEXT)",
    "CREATE INDEX IF NOT EXISTS token_minted_install ON token_minted(install_id)",
    # Revocation is for good: no code path un-revokes, and the database refuses it too.
    SetOnce("token_revoked_for_good", "token_minted", "revoked_at",
            "a revoked token stays revoked"),
)
# Rows listed per install at most: guards `app tokens` against an app restarted without end;
# and `host.db` too: a host's own re-minted rows past these are deleted (`minted`), in batches
# once an install has `prune_past()` rows.
MAX_LISTED = 200


def prune_past() -> int:
    """An install's row count past which `minted` deletes this host's re-minted rows beyond
    the install's newest `MAX_LISTED`. With one host and no token revoked otherwise (those
    stay), the most rows an install has."""
    return MAX_LISTED + MAX_LISTED // 4


@dataclass(frozen=True)
class TokenRow:
    jti: str
    app_id: str
    install_id: str
    session_id: str
    kid: str
    generation: int
    issued_at: float
    expires_at: float
    host_id: str
    revoked_at: float | None
    reason: str | None

    def to_json(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class TokenRegistry:
    def __init__(self, db_path: StoreTarget) -> None:
        self.store = open_store(db_path)
        ensure_schema(self.store, SCHEMA_COMPONENT, SCHEMA_VERSION, DDL)

    def minted(self, claims: Claims, host_id: str) -> builtins.list[str]:
        """Record a new token; revoke this host's earlier live tokens of the same install."""
        with self.store.transaction() as c:
            old = [str(r[0]) for r in c.execute(
                "UPDATE token_minted SET revoked_at=?, reason='re-minted' WHERE install_id=?"
                " AND host_id=? AND revoked_at IS NULL RETURNING jti",
                (claims.iat, claims.ins, host_id)).fetchall()]
            c.execute(
                "INSERT INTO token_minted(jti, app_id, install_id, session_id, kid, generation,"
                " epoch, issued_at, expires_at, host_id) VALUES(?,?,?,?,?,?,?,?,?,?)",
                (claims.jti, claims.app, claims.ins, claims.sid, claims.kid, claims.gen,
                 claims.epoch, claims.iat, claims.exp, host_id))
            # This host's own re-minted tokens past the install's newest MAX_LISTED rows go:
            # each named a child of this host that a later start of the same install replaced
            # (one child per install per host), so no process holds it, and `app tokens` lists
            # no further back. Kept, they were a row per start for good: an app crashing after
            # each event, restarted at the shortest backoff, added ~10 a second (DESIGN rule
            # 13). A token revoked any other way (the operator, a deactivated user) stays.
            # Once the install has a quarter more rows than that (`prune_past`), not at every
            # start: the prune sorts every row of the install, ~170 us of the ~270 a token's
            # record took here at 200 rows, on each start of an often restarted app.
            (rows,) = c.execute("SELECT count(*) FROM token_minted WHERE install_id=?",
                                (claims.ins,)).fetchone()
            if int(rows) > prune_past():
                c.execute(
                    "DELETE FROM token_minted WHERE install_id=? AND host_id=?"
                    " AND reason='re-minted' AND jti NOT IN (SELECT jti FROM token_minted"
                    " WHERE install_id=? ORDER BY issued_at DESC LIMIT ?)",
                    (claims.ins, host_id, claims.ins, MAX_LISTED))
        return old

    def revoke(self, install_id: str, now: float, reason: str,
               jti: str | None = None) -> builtins.list[str]:
        """Revoke one live token of the install (or all of them); returns the jtis revoked."""
        with self.store.transaction() as c:
            hit = [str(r[0]) for r in c.execute(
                "SELECT jti FROM token_minted WHERE install_id=? AND revoked_at IS NULL"
                " AND (CAST(? AS TEXT) IS NULL OR jti=?)", (install_id, jti, jti))]
            c.executemany("UPDATE token_minted SET revoked_at=?, reason=? WHERE jti=?",
                          [(now, reason[:200], j) for j in hit])
        return hit

    def is_live(self, install_id: str, jti: str) -> bool:
        """Whether `jti` is a live token of this install, however old (`list` shows only the
        newest `MAX_LISTED`: a live token of one host under many re-mints of another's was
        past it, and `app tokens --revoke JTI` said the app held no such token)."""
        return self.store.conn().execute(
            "SELECT 1 FROM token_minted WHERE install_id=? AND jti=? AND revoked_at IS NULL",
            (install_id, jti)).fetchone() is not None

    def is_revoked(self, jti: str) -> bool:
        row = self.store.conn().execute(
            "SELECT revoked_at FROM token_minted WHERE jti=?", (jti,)).fetchone()
        return row is not None and row[0] is not None

    def list(self, install_id: str) -> builtins.list[TokenRow]:
        if not table_exists(self.store.conn(), "token_minted"):
            return []
        rows = self.store.conn().execute(
            "SELECT jti, app_id, install_id, session_id, kid, generation, issued_at, expires_at,"
            " host_id, revoked_at, reason FROM token_minted WHERE install_id=?"
            " ORDER BY issued_at DESC LIMIT ?", (install_id, MAX_LISTED)).fetchall()
        return [TokenRow(*r) for r in rows]

    def close(self) -> None:
        self.store.close()
