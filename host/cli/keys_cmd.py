"""`stockade keys`: publisher key pairs and the operator's trust store (HOME/trust)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from host.apps.publisher import (
    PublisherError,
    TrustStore,
    fingerprint,
    key_id,
    parse_public_key,
)
from host.cli.output import EXIT_NEGATIVE, emit_json, err_console, fail
from host.home import Home
from host.inert import author, line
from host.ledger.anchor import read_small
from host.ledger.operator import audited, open_keyring
from host.store import open_store, reading, table_exists

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine output on stdout.")]

keys_app = typer.Typer(help="Publisher keys, the operator's trust store, and the host's own "
                       "signing keys.",
                       no_args_is_help=True)


@keys_app.command("generate")
def generate(
    out: Annotated[Path, typer.Argument(help="Private key file to write (and OUT.pub).")],
    json_out: JsonFlag = False,
) -> None:
    """Make a publisher Ed25519 key pair for signing packages (`stockade app sign`)."""
    from host.apps.publisher import generate_keypair

    try:
        priv, pub, kid = generate_keypair(out)
    except (PublisherError, OSError) as exc:
        fail(str(exc), "pick a new file name; existing keys are never overwritten")
    err_console.print(f"wrote private key {priv} (keep it secret) and public key {pub}; "
                      f"key id {kid}", highlight=False)
    err_console.print(f"operators trust it with: stockade keys trust {pub} --name NAME",
                      highlight=False)
    if json_out:
        emit_json({"private_key": str(priv), "public_key": str(pub), "kid": kid})


@keys_app.command("trust")
def trust(
    ctx: typer.Context,
    pubfile: Annotated[Path, typer.Argument(help="A publisher's public key file (*.pub).")],
    name: Annotated[str, typer.Option("--name", help="A short name for this publisher.")],
    json_out: JsonFlag = False,
) -> None:
    """Trust packages signed by this publisher key."""
    home: Home = ctx.obj
    try:
        # The publisher's file: a regular file of a few bytes, opened without blocking and
        # read up to a cap (`read_small`). A FIFO handed in as KEY.pub held the command for
        # good, and a link to /dev/zero read until memory ran out.
        text = read_small(pubfile).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {pubfile}: {exc}", "give the .pub file written by `keys generate`")
    try:
        home.ensure()
        raw = parse_public_key(text)  # checked before the record: a bad file is no act
        with audited(home.host_store, "trust", kid=key_id(raw),
                     detail=f"publisher {name[:64]!r} fingerprint {fingerprint(raw)}"):
            key = TrustStore(home.trust_dir).add(name, text)
    except PublisherError as exc:
        fail(str(exc), "see `stockade keys list`")
    err_console.print(line("trusted ", author(key.name), f": key {key.kid} ({key.fingerprint})"))
    if json_out:
        emit_json({"name": key.name, "kid": key.kid, "fingerprint": key.fingerprint})


@keys_app.command("list")
def list_keys(
    ctx: typer.Context,
    json_out: JsonFlag = False,
) -> None:
    """List trusted publisher keys."""
    home: Home = ctx.obj
    keys = TrustStore(home.trust_dir).list()
    if json_out:
        emit_json([{"name": k.name, "kid": k.kid, "fingerprint": fingerprint(k.public)}
                   for k in keys])
        return
    if not keys:
        err_console.print("no trusted publishers (add one with `stockade keys trust`)")
    for k in keys:
        err_console.print(line(author(k.name), f"  {k.kid}  {k.fingerprint}"))


@keys_app.command("untrust")
def untrust(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The trust-store name to remove.")],
    json_out: JsonFlag = False,
) -> None:
    """Stop trusting a publisher. Installed apps keep running; updates need --allow-unsigned."""
    home: Home = ctx.obj
    store = TrustStore(home.trust_dir)
    known = {k.name: k for k in store.list()}.get(name)
    removed = False
    if known is not None:
        with audited(home.ensure().host_store, "untrust", kid=known.kid,
                     detail=f"publisher {name[:64]!r} fingerprint {fingerprint(known.public)}"):
            removed = store.remove(name)
    if json_out:
        emit_json({"name": name, "removed": removed})
    if not removed:
        fail(f"no trusted key named {name!r}", "list them with `stockade keys list`")
    err_console.print(f"no longer trusting {name}")


# ---- the host's own signing keys (tokens and consent records) --------------------------------

@keys_app.command("host-list")
def host_list(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """The host's signing keys: which one signs now, which still verify, which are retired."""
    home: Home = ctx.obj
    if not (home.keys_dir / "keyring.json").is_file():  # read-only: never creates a key
        if json_out:
            emit_json({"keys": []})
        err_console.print(f"no host keys in {home.keys_dir} (`stockade init` creates one)",
                          highlight=False)
        return
    ring = open_keyring(home)
    rows = [{"kid": kid, "current": kid == ring.current, "retired": kid in ring.retired}
            for kid in sorted(ring.public_keys())]
    if json_out:
        emit_json({"keys": rows})
    for r in rows:
        state = "current" if r["current"] else ("retired" if r["retired"] else "verifies")
        err_console.print(f"{r['kid']}  {state}", highlight=False)


@keys_app.command("host-rotate")
def host_rotate(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Make a new signing key current. Tokens and consents signed by the old one keep
    verifying until it is retired, so running apps are not interrupted."""
    home: Home = ctx.obj
    from host.keys.keyring import Keyring

    had = Keyring.exists(home.keys_dir)
    ring = open_keyring(home.ensure())
    if not had and home.store_url is None:
        # A home with no key: the one just made (an audited `key_generate`) is the new key. A
        # rotation on top left it behind, never used, verifying until someone retired it.
        err_console.print(f"new signing key {ring.current} (the home had none)",
                          highlight=False)
        if json_out:
            emit_json({"current": ring.current, "previous": None})
        return
    old = ring.current
    # A serving host follows keyring.json and verifies with every key not retired, so running
    # apps and their re-consents keep working (host/runtime.py, `Keyring.refresh`).
    with audited(home.host_store, "key_rotate", kid=old, detail="new host signing key") as act:
        new = ring.rotate()
        # The key it replaced as read under the keyring's lock: another operator's rotation
        # since this run opened the keyring moved it on (`Keyring.rotate`).
        old = ring.previous
        act.note(kid=new, detail=f"new current key {new}; {old} verifies until retired")
        if home.store_url is not None:  # every host sharing the store learns the new key
            from host.keys.shared import publish_rotation

            publish_rotation(home.host_store, ring, old)
    err_console.print(f"new signing key {new}; {old} still verifies until `stockade keys "
                      f"host-retire {old}`", highlight=False)
    if json_out:
        emit_json({"current": new, "previous": old})


@keys_app.command("host-retire")
def host_retire(ctx: typer.Context, kid: str, json_out: JsonFlag = False) -> None:
    """Stop accepting a host key. Refused while a consent record still depends on it."""
    from host.keys.keyring import KeyError_, KeyringDamaged

    home: Home = ctx.obj
    ring = open_keyring(home.ensure())
    if kid not in ring.public_keys():
        fail(f"no host key {kid!r}", "list them with `stockade keys host-list`")
    in_use = 0
    if home.has_host_store():
        with reading(home.host_store) as conn:
            in_use = _depending(conn, kid)
    if in_use:
        _refuse_in_use(in_use, kid)
    if kid == ring.current:
        fail("cannot retire the current signing key", "rotate first: `stockade keys host-rotate`")
    try:
        with audited(home.host_store, "key_retire", kid=kid, detail="host key retired"):
            # Counted again under the keyring's lock, in a write transaction held until the
            # keyring names it retired: a consent signed by it meanwhile (by a keyring read
            # before the rotation) is either counted here or refused as it is written.
            ring.retire(kid, unused=lambda: _unused(home, kid))
            if home.store_url is not None:  # every host sharing the store retires it too
                from host.keys.shared import publish_retirement

                publish_retirement(home.host_store, ring, kid)
    except KeyInUse as exc:
        _refuse_in_use(exc.count, kid)
    except KeyringDamaged:
        raise  # said with its own hint (restore the keys), by the CLI's last net
    except KeyError_ as exc:
        from host.keys.shared import RetirementNotPublished

        if isinstance(exc, RetirementNotPublished):  # retired here; its message says the rest
            fail(str(exc), f"on every other host sharing the store: `stockade keys host-retire "
                 f"{kid}`", EXIT_NEGATIVE)
        fail(str(exc), "rotate first: `stockade keys host-rotate`")
    err_console.print(f"retired {kid}: tokens signed by it no longer verify", highlight=False)
    if json_out:
        emit_json({"retired": kid})


class KeyInUse(Exception):
    """Installs hold consent records signed by the key being retired (`_unused`)."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} install(s) hold consent records signed by it")
        self.count = count


def _depending(conn: Any, kid: str) -> int:
    """How many installs' consents (the ones they run under) `kid` signed."""
    if not table_exists(conn, "consent_records"):  # no install store yet
        return 0
    return int(conn.execute(
        "SELECT count(*) FROM consent_records c JOIN install_installs i"
        " ON i.consent_id = c.consent_id WHERE c.kid = ?", (kid,)).fetchone()[0])


@contextmanager
def _unused(home: Home, kid: str) -> Iterator[None]:
    """`KeyInUse` when an install runs under a consent `kid` signed; else the store's write
    lock, held for the block (the keyring's write), so no consent is written in between."""
    store = open_store(home.host_store)
    try:
        with store.transaction() as c:
            count = _depending(c, kid)
            if count:
                raise KeyInUse(count)
            yield
    finally:
        store.close_all()


def _refuse_in_use(count: int, kid: str) -> NoReturn:
    fail(f"{count} install(s) hold consent records signed by {kid}; retiring it would "
         "disable them", "re-confirm each with `stockade app consent APP` (signs with the "
         "current key), then retire", EXIT_NEGATIVE)


def register(root: typer.Typer) -> None:
    """Mount this group's commands on the root CLI."""
    root.add_typer(keys_app, name="keys")

