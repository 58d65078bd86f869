"""`stockade serve --mint-token USERNAME [--expires-in DURATION] [--replace]`, `--list-tokens
USERNAME` and `--revoke-tokens USERNAME`: the operator's admin service tokens, the view of a
server user's REST tokens, and the way to take them all back.

Why: a service token is an admin's whole power, bound to no client: it expires
(`personal_tokens.DEFAULT_SERVICE_TTL_S`, at most `MAX_SERVICE_TTL_S`; the REST API checks on
every request), and `--replace` rotates it, the earlier service tokens ending in the transaction
that stores the new one. Minting is an operator act recorded in the audit chain before it is
made (DESIGN rule 14), never with the token. Listing shows each token's name, kind, when it was
made and when it expires, never the token (only its digest is stored). Revoking removes every
REST token of the user (service tokens, sign-ins, personal and admin-minted ones): a token
cannot be named one by one, and an operator taking a credential back wants none left; it is
recorded before it acts too, with how many were removed in its outcome.
"""
from __future__ import annotations

import datetime
import re

import typer

from host.cli.output import EXIT_USAGE, emit_json, err_console, fail
from host.home import Home
from host.inert import visible
from host.server import SYSTEM
from host.server.embedded import EmbeddedServer
from host.server.errors import NotFound, ServerError
from host.server.personal_tokens import (
    DEFAULT_SERVICE_TTL_S,
    MAX_SERVICE_TTL_S,
    MIN_SERVICE_TTL_S,
    NotAServiceUser,
    TooManyServiceTokens,
    held,
    mint_service,
    revoke_all,
    service_user,
)
from host.server.shapes import User

# `--expires-in`: a whole number of minutes, hours, days or weeks, ASCII digits only (`\d` and
# `int()` take other scripts' digits too), at most 7 of them: a number typed with no bound is
# never multiplied out.
_DURATION = re.compile(r"([0-9]{1,7})([mhdw])")
_UNIT_S = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_expires_in(text: str | None) -> int:
    """`--expires-in` in seconds (the default when not given), or exit 2 saying what is
    accepted."""
    if text is None:
        return DEFAULT_SERVICE_TTL_S
    m = _DURATION.fullmatch(text)
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)] if m else 0
    if not MIN_SERVICE_TTL_S <= seconds <= MAX_SERVICE_TTL_S:
        fail(f"--expires-in {visible(text[:32])!r} is not a lifetime from 1m to at most "
             f"{MAX_SERVICE_TTL_S // 86_400}d",
             hint="a whole number of minutes, hours, days or weeks: 30m, 12h, 90d, 4w "
             f"(the default: {DEFAULT_SERVICE_TTL_S // 86_400}d)", code=EXIT_USAGE)
    return seconds


def mint_token(home: Home, server: EmbeddedServer, username: str, ttl_s: int, replace: bool,
               json_out: bool) -> None:
    """Create (or reuse) the admin service user and print a new service token once, valid
    `ttl_s` seconds; `replace`: its earlier service tokens end as the new one is stored."""
    from host.ledger.operator import audited
    from host.ledger.records import AuditError

    detail = f"admin service token for {username[:64]!r}"
    if replace:
        detail += ", replacing its earlier service tokens"
    try:
        # Rule 14: an admin's credential is a change to the workspace's powers, recorded
        # before it is made (the token itself never is: only who asked, for whom, how long).
        with audited(home.ensure().host_store, "mint_token", detail=detail) as act:
            user: User = service_user(server, username)
            now = server.clock.now()
            token, replaced = mint_service(server.db, user["id"], now, ttl_s, replace=replace)
            note = (f"admin service token for {user['username']!r} (X-User-Id {user['id']}), "
                    f"expires {_when(now + ttl_s)}")
            if replace:
                note += f"; {replaced} earlier service token(s) revoked"
            act.note(detail=note)
    except AuditError as e:
        fail(f"no token was minted: the audit record could not be written ({e})",
             hint="run `stockade audit verify` and `stockade doctor`")
    except NotAServiceUser as e:
        fail(f"cannot mint a token for {username!r}: {e}; a token is minted only for a "
             "new service user or an existing active admin, never by promoting one",
             hint="choose a new user name for the service account")
    except TooManyServiceTokens as e:
        fail(f"cannot mint a token for {username!r}: {e}", hint="`--mint-token NAME "
             "--replace` ends the earlier ones as the new one is stored")
    except ServerError as e:  # a bad user name, and the like
        fail(f"cannot mint a token for {username!r}: {e}", hint="usernames: 3..64 of "
             "letters, digits, '.', '_', '-'")
    # Anything else (a store that refused the write) is no input error: it reaches the CLI's
    # one line for an internal error (exit 1), its outcome recorded as failed by `audited`.
    expires = _when(now + ttl_s)
    if json_out:
        emit_json({"user_id": user["id"], "username": user["username"], "token": token,
                   "expires_at": expires, "replaced": replaced})
        return
    said = f"; {replaced} earlier service token(s) revoked" if replace else ""
    err_console.print(f"token for {user['username']} (X-User-Id: {user['id']}), expires "
                      f"{expires}{said}; shown only once:", highlight=False)
    typer.echo(token)


def _user(server: EmbeddedServer, username: str) -> User:
    try:
        return server.users_get_by_username(SYSTEM, username)
    except NotFound:
        fail(f"no server user {username[:64]!r}", hint="user names are matched in any case")


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ends(at: float | None, now: float) -> str:
    if at is None:
        return "never expires"
    return f"expired {_when(at)}" if at <= now else f"expires {_when(at)}"


def list_tokens(server: EmbeddedServer, username: str, json_out: bool) -> None:
    """Print the user's tokens (name, kind, created, expiry), oldest first."""
    user = _user(server, username)
    rows = held(server.db, user["id"])
    now = server.clock.now()
    if json_out:
        emit_json({"user_id": user["id"], "username": user["username"],
                   "tokens": [{"name": n, "kind": k, "created_at": _when(t),
                               "expires_at": None if e is None else _when(e),
                               "expired": e is not None and e <= now}
                              for n, k, t, e in rows]})
        return
    typer.echo(f"{user['username']} (X-User-Id: {user['id']}): {len(rows)} token(s)")
    for name, kind, at, ends in rows:
        # The name is the token holder's words (`users.generatePersonalAccessToken`): shown
        # inert, an escape sequence in it never reaches the operator's terminal (rule 12).
        typer.echo(f"  {_when(at)}  {kind:<8}  {_ends(ends, now):<28}  {visible(name)}")


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
