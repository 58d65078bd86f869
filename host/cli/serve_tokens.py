"""`stockade serve --list-tokens USERNAME` and `--revoke-tokens USERNAME`: the operator's view of
a server user's REST tokens, and the way to take them all back.

Why: a token `serve --mint-token` prints never expires, and minting again leaves the earlier one
valid; before these options the only way to end a leaked service token was to deactivate its
user. Listing shows each token's name, kind and when it was made, never the token (only its
digest is stored). Revoking removes every REST token of the user (service tokens, sign-ins,
personal and admin-minted ones): a token cannot be named one by one, and an operator taking a
credential back wants none left. It is an operator act, recorded in the audit chain before it
is made (DESIGN rule 14), with how many were removed in its outcome. To rotate a service
token: `--revoke-tokens NAME`, then `--mint-token NAME` (in that order: the revocation would
take the new one too).
"""
from __future__ import annotations

import datetime

import typer

from host.cli.output import emit_json, fail
from host.home import Home
from host.inert import visible
from host.server import SYSTEM
from host.server.embedded import EmbeddedServer
from host.server.errors import NotFound
from host.server.personal_tokens import held, revoke_all
from host.server.shapes import User


def _user(server: EmbeddedServer, username: str) -> User:
    try:
        return server.users_get_by_username(SYSTEM, username)
    except NotFound:
        fail(f"no server user {username[:64]!r}", hint="user names are matched in any case")


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_tokens(server: EmbeddedServer, username: str, json_out: bool) -> None:
    """Print the user's tokens (name, kind, created), oldest first."""
    user = _user(server, username)
    rows = held(server.db, user["id"])
    if json_out:
        emit_json({"user_id": user["id"], "username": user["username"],
                   "tokens": [{"name": n, "kind": k, "created_at": _when(t)}
                              for n, k, t in rows]})
        return
    typer.echo(f"{user['username']} (X-User-Id: {user['id']}): {len(rows)} token(s)")
    for name, kind, at in rows:
        # The name is the token holder's words (`users.generatePersonalAccessToken`): shown
        # inert, an escape sequence in it never reaches the operator's terminal (rule 12).
        typer.echo(f"  {_when(at)}  {kind:<8}  {visible(name)}")


def revoke_tokens(home: Home, server: EmbeddedServer, username: str, json_out: bool) -> None:
    """Remove every REST token of the user, audited before it acts (a refusal is recorded as
    refused, as a mint is)."""
    from host.ledger.operator import audited
    from host.ledger.records import AuditError

    try:
        with audited(home.ensure().host_store, "revoke_tokens",
                     detail=f"every REST token of {username[:64]!r}") as act:
            user = server.users_get_by_username(SYSTEM, username)
            removed = revoke_all(server.db, user["id"])
            act.note(detail=f"{removed} REST token(s) of {user['username']!r} "
                            f"(X-User-Id {user['id']}) revoked")
    except AuditError as e:
        fail(f"no token was revoked: the audit record could not be written ({e})",
             hint="run `stockade audit verify` and `stockade doctor`")
    except NotFound:
        fail(f"no server user {username[:64]!r}", hint="user names are matched in any case")
    if json_out:
        emit_json({"user_id": user["id"], "username": user["username"], "revoked": removed})
    else:
        typer.echo(f"revoked {removed} REST token(s) of {user['username']} "
                   f"(X-User-Id: {user['id']})")
