"""Operator actions as library calls, shared by the CLI, the demo and tests.

The CLI adds disclosure rendering and interactive consent around these; the steps that change
state live here once.
"""
from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from host.apps import lifecycle_seams
from host.apps.appdiff import PermissionDiff, diff_manifests, grants_after
from host.apps.consent import ConsentError, guardrail_problems, make_consent, verify_install
from host.apps.consentseq import next_seq
from host.apps.disclosure import (
    Disclosure,
    RouteActions,
    build_disclosure,
    load_policy_view,
)
from host.apps.installs import (
    InstallChanged,
    InstallError,
    InstallGone,
    InstallRecord,
    InstallStore,
    new_install_id,
)
from host.apps.lineage import Lineage, Transfer, binding_of, claim_in, describe
from host.apps.manifest import (
    Manifest,
    SettingValue,
    coerce_setting,
    emptied_value,
    empties_setting,
)
from host.apps.package_gc import prune_packages
from host.apps.package_store import store_package
from host.apps.packages import Package
from host.apps.publisher import SignatureCheck
from host.apps.switches import carried_switch
from host.clock import Clock, SystemClock
from host.home import Home
from host.ledger.ledger import Ledger
from host.ledger.operator import audited, open_keyring
from host.ledger.records import AuditRecord


def default_settings(manifest: Manifest, keep: Mapping[str, SettingValue] | None = None, *,
                     was_secret: frozenset[str] = frozenset()) -> dict[str, SettingValue]:
    """Settings for a new install (or an update, keeping values whose type still fits). A
    value the operator gave as a secret (`was_secret`) is not kept for a version that no
    longer calls its key secret: it would be shown in clear and logged unmasked."""
    out: dict[str, SettingValue] = {}
    for s in manifest.setting:
        if keep is not None and s.key in keep and (s.secret or s.key not in was_secret):
            try:
                out[s.key] = coerce_setting(s, keep[s.key])
                continue
            except ValueError:
                pass  # type changed across versions: fall back to the default
        if s.default is not None:
            out[s.key] = s.default
    return out


def disclose(home: Home, pkg: Package, sig: SignatureCheck,
             app_users: int | None = None, *, rest_as: str | None = None,
             route_actions: RouteActions | None = None) -> tuple[Disclosure, str | None]:
    """The disclosure for a package under the home's current policy (and why policy is absent)."""
    policy, why = load_policy_view(home.policies_dir)
    return build_disclosure(pkg.manifest, pkg.content_hash, sig, policy,
                            app_users=app_users, rest_as=rest_as,
                            route_actions=route_actions), why


def install_package(
    home: Home,
    pkg: Package,
    sig: SignatureCheck,
    grants: frozenset[str],
    *,
    policy_revision: str | None,
    settings: Mapping[str, SettingValue] | None = None,
    clock: Clock | None = None,
    transfer: bool = False,
    actor: str | None = None,
    rest_as: str | None = None,
) -> InstallRecord:
    """Store the package, sign the consent record, make the app's own server user and create
    the install with its consent and that user (one transaction). An install that fails is
    `operator.outcome` FAIL and leaves no install, consent, hook or binding of the app id
    behind (however it ends: an error, Ctrl-C, a kill); InstallError when
    the app's user cannot be made (its username held by another user).

    The app id must belong to this package's publisher (`host.apps.lineage`); `transfer` is the
    operator's explicit consent to hand an id held by another publisher to this one (audited).
    Raises LineageError otherwise. `rest_as`: the server user the operator names for the app's
    REST routes without a bridge action (None: the app's own user); signed into the consent."""
    problems = guardrail_problems(pkg.manifest)
    if problems:
        raise ConsentError("; ".join(problems))
    clock = clock or SystemClock()
    install_id = new_install_id()
    values = default_settings(pkg.manifest)
    for key, value in (settings or {}).items():
        spec = pkg.manifest.setting_named(key)
        if spec is None:
            raise ValueError(f"{pkg.app_id} has no setting {key!r}")
        if empties_setting(spec, value):
            # An optional setting given empty is as if not given, as `app settings APP KEY=`
            # makes it: its default, else unset (a required one: `coerce_setting` refuses).
            if (default := emptied_value(spec)) is None:
                values.pop(key, None)
            else:
                values[key] = default
            continue
        values[key] = coerce_setting(spec, value)
    kid = sig.kid[:64] if sig.kid else None  # a package's claim: capped, never refused here
    # Rule 14, audit before act: the install is a record before the id is bound or stored.
    with audited(home.host_store, "install", clock=clock, actor=actor, app_id=pkg.app_id,
                 install_id=install_id, version=pkg.manifest.version,
                 grants=tuple(sorted(grants)), kid=kid,
                 detail=f"publisher {sig.status}; package {pkg.content_hash}") as act, \
            InstallStore(home.host_store) as store:
        # A failed install leaves nothing behind: the app's own user, which it cannot run
        # without, is checked before the first durable write (the id's binding), and the row
        # and its consent are written only once that user exists.
        blocked = app_user_blocked(home, clock, pkg.app_id)
        if blocked is not None:
            raise InstallError(blocked)
        # The id is bound in the row's own transaction (`claim_in` below): an install that
        # fails or is interrupted before its row exists binds nothing (a retry would otherwise
        # be refused as another app). Planned here, so a transfer is refused or audited first.
        lineage = Lineage(home.host_store)
        try:
            was, moved = lineage.plan(pkg.app_id, sig.to_dict(), transfer=transfer, fresh=True)
        finally:
            lineage.close()
        if moved is not None:  # audited before the new publisher's install exists
            audit_transfer(home, moved, install_id, clock, actor,
                           "; made with the install (none if its outcome is FAIL)")
        keyring = open_keyring(home, clock)
        path = store_package(home.packages_dir, pkg)
        seq = next_seq(store, install_id)
        consent = make_consent(
            keyring, install_id=install_id, app_id=pkg.app_id, version=pkg.manifest.version,
            package_hash=pkg.content_hash, manifest_hash=pkg.manifest.manifest_hash(),
            grants=grants, policy_revision=policy_revision, now=clock.now(), seq=seq,
            rest_as=rest_as, enabled=True)
        # Each app gets its own server user at install: the sender of its messages and the
        # agent it can serve rooms as (idempotent: a reinstall gets the same user back). On a
        # connected Rocket.Chat workspace that cannot be reached now, the serving host makes it
        # at start instead. Made before the row, and recorded in the row's own transaction: an
        # install is never saved, enabled and consented without the user it needs.
        user_id = install_app_user(home, clock, pkg.app_id, pkg.manifest.name)
        rec = store.create(
            install_id=install_id, manifest=pkg.manifest, package_hash=pkg.content_hash,
            package_path=path, grants=grants, settings=values, publisher=sig.to_dict(),
            consent=consent, app_user_id=user_id,
            also=lambda c: claim_in(c, pkg.app_id, sig.to_dict(), transfer=transfer,
                                    fresh=True, expect=was))
        # The consent's number in the chain: the witness of the install's latest consent.
        act.note(generation=rec.generation, consent_seq=seq)
    prune_packages(home)  # a reinstall's or a failed install's leftovers
    return rec


def app_user_blocked(home: Home, clock: Clock, app_id: str) -> str | None:
    """Why app `app_id` could not get its own user on the home's embedded server (its username
    held by another user), or None. A connected workspace is asked when its user is made."""
    from host.server.embedded import EmbeddedServer
    from host.server.remote.config import connected

    if connected(home):
        return None
    server = EmbeddedServer(home.server_store, clock)
    try:
        held = server.app_username_holder(app_id)
    finally:
        server.close()
    return None if held is None else (
        f"app {app_id!r} cannot get its own server user: the username {held['username']!r} "
        "belongs to another user, not this app's own (made by an operator, or before apps "
        "were refused names starting with 'app.'); remove that user (REST users.delete), "
        "then install again")


def install_app_user(home: Home, clock: Clock, app_id: str, name: str) -> str | None:
    """The app's own user on the home's server (None: a workspace that cannot be reached).
    InstallError when the embedded server cannot make it (its username held by another)."""
    from host.server.embedded import EmbeddedServer
    from host.server.errors import Conflict, ServerError
    from host.server.remote.config import connected, open_remote

    if not connected(home):
        server = EmbeddedServer(home.server_store, clock)
        try:
            return server.create_app_user(app_id, name)["id"]
        except Conflict as exc:
            raise InstallError(str(exc)) from None
        finally:
            server.close()
    remote = open_remote(home, clock)
    try:
        return remote.create_app_user(app_id, name)["id"]
    except ServerError:
        return None
    finally:
        remote.close()


def audit_transfer(home: Home, moved: Transfer, install_id: str, clock: Clock,
                   actor: str | None, note: str = "") -> None:
    """The operator handed an app id to another publisher: a record in the audit chain."""
    ledger = Ledger(home.host_store, clock)
    try:
        ledger.append(AuditRecord(
            kind="consent", code="publisher_transfer", app_id=moved.app_id,
            install_id=install_id, actor=actor,
            detail=f"app id transferred from {describe(moved.old)} to {describe(moved.new)}"
                   f"{note}"))
    finally:
        ledger.close()


class StoredPackageChanged(InstallChanged):
    """The package read for a consent is not the one the install (or its pending update)
    names: nothing was written."""


def consent_package_problem(rec: InstallRecord, pkg: Package) -> str | None:
    """Why `pkg` may not be consented to for `rec`, or None. A consent signs the package it is
    given; this one must be what the install names: its pending update's package, else the
    running one. A package at that path swapped behind the host's back (which never runs,
    `host.supervise.appcode`) would otherwise come out of a re-confirm or a narrowing
    `--revoke` freshly signed, with no diff shown and no publisher check."""
    want = rec.pending.package_hash if rec.pending is not None else rec.package_hash
    if pkg.content_hash == want:
        return None
    what = "pending update's" if rec.pending is not None else "installed"
    return (f"the {what} package of {rec.app_id} on disk is not the one recorded (content hash "
            f"{pkg.content_hash[:23]}…, recorded {want[:23]}…): it was changed behind the "
            "host's back; nothing was consented")


def apply_consent(home: Home, store: InstallStore, rec: InstallRecord, pkg: Package,
                  sig: SignatureCheck, grants: frozenset[str], *, kind: str,
                  policy_revision: str | None, diff: Mapping[str, Any] | None,
                  before: frozenset[str], rest_as: str | None = None, transfer: bool = False,
                  actor: str | None = None, clock: Clock | None = None) -> None:
    """Sign and apply the operator's consent to `pkg` with `grants` for an installed app: a
    pending update approved (`kind="update"`) or grants changed (`"regrant"`). The CLI's
    `app consent` and the console both come here.

    Audit before act (rule 14): `operator.consent` is a record before the id's binding moves;
    the package must come from the publisher the app id is bound to, unless the operator hands
    the id over (`transfer`, audited) — DESIGN rule 11; raises LineageError otherwise.
    InstallChanged (nothing written) when the install changed after `rec` was read;
    StoredPackageChanged when `pkg` is not the package the install names."""
    clock = clock or SystemClock()
    pending = rec.pending
    problem = consent_package_problem(rec, pkg)
    if problem is not None:
        raise StoredPackageChanged(problem)
    # The grants, settings and pending update were computed from `rec`: another operator's
    # change since would be silently undone by writing them (InstallChanged; checked here,
    # before the record and the lineage, and again inside the write).
    store.check_unchanged(rec)
    keyring = open_keyring(home, clock)
    with audited(home.host_store, "consent", clock=clock, actor=actor, app_id=rec.app_id,
                 install_id=rec.install_id, version=pkg.manifest.version, kid=keyring.current,
                 grants=tuple(sorted(grants)),
                 detail=f"{kind}; grants before: {','.join(sorted(before)) or 'none'}") as act:
        # Taking grants away from the running package is always the operator's to do, even
        # when its publisher's key is no longer trusted (the id's binding then names a key
        # this check no longer earns); anything else must come from the id's publisher.
        narrowing = kind == "regrant" and pending is None and grants <= before
        # The id is bound in the row's own transaction (`claim_in` below, as an install does):
        # a consent whose write then fails (another operator's change landed meanwhile, an
        # interruption) hands the id to no one. Planned here, so a refusal comes before
        # anything is written and a transfer is audited first.
        was: str | None = None
        moved = None
        if not narrowing:
            lineage = Lineage(home.host_store)
            try:
                was, moved = lineage.plan(rec.app_id, sig.to_dict(), transfer=transfer)
            finally:
                lineage.close()
        if moved is not None:
            audit_transfer(home, moved, rec.install_id, clock, actor,
                           "; made with the consent (none if its outcome is FAIL)")
        seq = next_seq(store, rec.install_id)
        record = make_consent(
            keyring, install_id=rec.install_id, app_id=rec.app_id,
            version=pkg.manifest.version, package_hash=pkg.content_hash,
            manifest_hash=pkg.manifest.manifest_hash(), grants=grants,
            policy_revision=policy_revision, now=clock.now(), seq=seq, kind=kind,
            rest_as=rest_as, enabled=carried_switch(store, keyring, rec))
        store.apply_update(
            rec.install_id, manifest=pkg.manifest, package_hash=pkg.content_hash,
            package_path=pending.package_path if pending else rec.package_path,
            grants=grants, settings=default_settings(
                pkg.manifest, dict(rec.settings), was_secret=rec.secret_keys),
            publisher=sig.to_dict(), consent=record, diff=dict(diff or {}), hook="update",
            expect=rec, also=None if narrowing else (
                lambda c: claim_in(c, rec.app_id, sig.to_dict(), transfer=transfer,
                                   expect=was)))
        act.note(consent_seq=seq)
    prune_packages(home)  # the version an approved update replaced


def consented_grants(home: Home, store: InstallStore, rec: InstallRecord,
                     clock: Clock | None = None) -> frozenset[str]:
    """What the operator's signed consent grants `rec`: its row's grants when they verify,
    nothing otherwise. An update carries these forward, never the row as it stands: a row
    widened behind the host's back would otherwise come out of the update freshly signed."""
    return consented_terms(home, store, rec, clock)[0]


def consented_terms(home: Home, store: InstallStore, rec: InstallRecord,
                    clock: Clock | None = None) -> tuple[frozenset[str], str | None]:
    """The grants and the REST identity (`rest_as`) the operator's signed consent gives `rec`,
    or (nothing, the app's own user) when the record does not verify against it: an identity
    is handed on only from the consent that named it."""
    check = verify_install(rec, store, open_keyring(home, clock or SystemClock()),
                           disable=False)
    return (rec.grants, rec.rest_as) if check.ok else (frozenset(), None)


def submit_update(home: Home, store: InstallStore, rec: InstallRecord, pkg: Package,
                  sig: SignatureCheck, *, policy_revision: str | None,
                  actor: str | None = None, clock: Clock | None = None) -> PermissionDiff:
    """Hand a new version of an installed app to the host (`app update`, the console).

    What widens power waits for consent: the package is stored and parked as pending
    (`operator.update_pending`) while the running version keeps its grants; anything else
    applies at once with the grants it keeps (`operator.update`), replacing an update that
    waits for consent (`rec.pending`: the record's detail names it). Returns the diff; the caller
    tells a pending one by `diff.needs_consent`. Guardrails and the signature are the caller's
    to check first (they need the operator's answer). InstallChanged (nothing written) when
    what applies at once finds the install changed since `rec` was read: its grants, settings
    and consent were computed from `rec`, and writing them would undo another operator's
    consent or put back a secret rotated meanwhile."""
    clock = clock or SystemClock()
    diff = diff_manifests(rec.manifest, pkg.manifest, old_publisher=rec.publisher,
                          new_publisher=sig.to_dict())
    lineage = Lineage(home.host_store)
    try:
        bound = lineage.bound(rec.app_id)
    finally:
        lineage.close()
    if bound not in (None, binding_of(sig.to_dict())):
        # The id belongs to another publisher than this package's, whatever the install row
        # says: only a consent (with the transfer) may apply it (DESIGN rule 11).
        diff = replace(diff, publisher_changed=True)
    path = store_package(home.packages_dir, pkg)
    if diff.needs_consent:
        with audited(home.host_store, "update_pending", clock=clock, actor=actor,
                     app_id=rec.app_id, install_id=rec.install_id, version=pkg.manifest.version,
                     detail=f"from {rec.version}; waits for consent"):
            store.set_pending(rec.install_id, manifest=pkg.manifest,
                              package_hash=pkg.content_hash, package_path=path,
                              publisher=sig.to_dict(), diff=diff.to_dict())
        prune_packages(home)  # the pending update this one replaced
        return diff
    held, rest_as = consented_terms(home, store, rec, clock)
    grants = grants_after(held, pkg.manifest.asked)
    seq = next_seq(store, rec.install_id)
    # The operator's REST identity (`--rest-as`) is part of what they consented to: an update
    # that widens nothing keeps it, as it keeps the grants.
    keyring = open_keyring(home, clock)
    consent = make_consent(
        keyring, install_id=rec.install_id, app_id=rec.app_id,
        version=pkg.manifest.version, package_hash=pkg.content_hash,
        manifest_hash=pkg.manifest.manifest_hash(), grants=grants,
        policy_revision=policy_revision, now=clock.now(), seq=seq, kind="update",
        rest_as=rest_as, enabled=carried_switch(store, keyring, rec))
    # An update waiting for consent is replaced by this one (`apply_update` drops it): the
    # chain says so, as a rejection would, and the caller tells the operator.
    dropped = (f"; the pending {rec.pending.version} (waiting for consent) is dropped"
               if rec.pending is not None else "")
    with audited(home.host_store, "update", clock=clock, actor=actor, app_id=rec.app_id,
                 install_id=rec.install_id, version=pkg.manifest.version, kid=consent.kid,
                 grants=tuple(sorted(grants)), detail=f"from {rec.version}{dropped}") as act:
        store.apply_update(rec.install_id, manifest=pkg.manifest,
                           package_hash=pkg.content_hash, package_path=path, grants=grants,
                           settings=default_settings(
                               pkg.manifest, dict(rec.settings), was_secret=rec.secret_keys),
                           publisher=sig.to_dict(), consent=consent, diff=diff.to_dict(),
                           expect=rec)
        act.note(consent_seq=seq)
    prune_packages(home)  # the version this one replaced
    return diff


def uninstall_app(home: Home, store: InstallStore, rec: InstallRecord, *, users: str,
                  agents: str, actor: str | None = None) -> tuple[int | None, str]:
    """Remove an installed app (`app uninstall`, the console): its livechat agents out of
    routing unless `agents="keep"`, the users it created deactivated when
    `users="deactivate"`, its stored data, install record, consent and packages. Audit before
    act: `operator.uninstall` is durable before any user or datum is touched. Returns (users
    deactivated, or None when no chat server is wired; what was deleted of its data).
    InstallGone when another operator uninstalled it after `rec` was read: seen here, before
    any record or change; or, in the narrow window after this look, by the removal itself,
    which then writes nothing (the agents and users steps before it ran again)."""
    gone = (f"{rec.app_id} was already uninstalled (by another operator, meanwhile): "
            "nothing changed")
    if store.get(rec.install_id) is None:
        raise InstallGone(gone)
    deactivated: int | None = None
    with audited(home.host_store, "uninstall", actor=actor, app_id=rec.app_id,
                 install_id=rec.install_id, version=rec.version,
                 detail=f"users: {users}; agents: {agents}") as act:
        # The ok record names a consent number past every one the install had (`consentseq`):
        # its consent rows stay as history, and a row put back by whoever can write the store
        # would verify with them; with this, the chain says no consent of it is current.
        act.note(consent_seq=next_seq(store, rec.install_id))
        if agents == "remove":
            lifecycle_seams.remove_app_agents(home, rec)
        if users == "deactivate":
            deactivated = lifecycle_seams.deactivate_app_users(home, rec)
        # Its data goes in the install's own removal: a put landing before it is deleted with
        # the rest, one landing after it finds no install and is refused (`PersistenceStore`).
        remover = lifecycle_seams.app_data_remover(home)
        try:
            removed = store.remove(rec.install_id, {"users": users}, also=remover)
        except InstallGone:
            raise InstallGone(gone) from None
        data = "no stored data" if removed is None else f"removed {removed} stored item(s)"
    # Its log and the log's rotation too, as `app uninstall` says (a host still running it
    # deletes them again after its stop, which may note there: `Host._stop_runner`). Kept,
    # each install/uninstall cycle left up to 2 MiB in the logs folder for good.
    for log in (home.logs_dir / f"{rec.install_id}.log",
                home.logs_dir / f"{rec.install_id}.log.1"):
        log.unlink(missing_ok=True)
    for p in {rec.package_path.parent} | (
            {rec.pending.package_path.parent} if rec.pending else set()):
        if p.parent == home.packages_dir:
            shutil.rmtree(p, ignore_errors=True)
    prune_packages(home)  # versions its updates left behind
    return deactivated, data


def reject_pending(home: Home, store: InstallStore, rec: InstallRecord) -> None:
    """Discard `rec`'s pending update (the caller audits it): the record first, then its
    package, which no install names any more."""
    store.clear_pending(rec.install_id)
    prune_packages(home)
