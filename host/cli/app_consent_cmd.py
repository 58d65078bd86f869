"""`stockade app consent`: approve a pending update, or change the current version's grants.

Grants change additively: `--grant X` adds X to what the app already holds and `--revoke Y`
removes Y; nothing else changes. The before/after difference is shown first, and removing a
grant needs a yes at the prompt or `--yes` (without a terminal: exit 3, nothing changed).
`--dry-run` shows the difference and changes nothing.
"""
from __future__ import annotations

from typing import Annotated

import typer

from host.apps.appdiff import diff_manifests, grants_after, render_diff
from host.apps.consent import (
    guardrail_problems,
    is_interactive,
    verify_install,
)
from host.apps.installs import InstallChanged
from host.apps.lifecycle_seams import transfer_keeps
from host.apps.lineage import LineageError
from host.apps.operations import (
    StoredPackageChanged,
    apply_consent,
    consent_package_problem,
    consented_grants,
    consented_terms,
    reject_pending,
)
from host.cli.app_cmd import (
    _confirm,
    _confirm_widening,
    _disclose,
    _grants,
    _open,
    _read,
    _refuse_guardrails,
    _signature,
)
from host.cli.app_common import (
    TRANSFER_HINT,
    AppRef,
    JsonFlag,
    RestAsOpt,
    TransferOpt,
    app_app,
    audit_app,
    existing_store,
    operator_name,
    resolve,
    rest_identity,
)
from host.cli.output import EXIT_CONFIRM, EXIT_NEGATIVE, emit_json, err_console, fail
from host.home import Home
from host.inert import host, line

AddGrantOpt = Annotated[list[str] | None, typer.Option(
    "--grant", help="Add this permission to the app's grants (repeat for each).")]
RevokeOpt = Annotated[list[str] | None, typer.Option(
    "--revoke", help="Take this permission away (repeat for each).")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; confirm removals.")]
SWAPPED_HINT = ("a pending update: discard it with --reject and run `app update` again; the "
                "installed version: copy the package you installed back over that file")

DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change "
                                                           "nothing.")]


def grant_change(before: frozenset[str], asked: frozenset[str], add: list[str],
                 revoke: list[str]) -> frozenset[str]:
    """The grants after adding `add` and removing `revoke`; only permissions the app asks for."""
    unknown = sorted((set(add) | set(revoke)) - asked)
    if unknown:
        fail(f"{', '.join(unknown)}: the app does not ask for "
             f"{'this' if len(unknown) == 1 else 'these'}",
             f"it asks for: {', '.join(sorted(asked)) or 'nothing'}")
    both = sorted(set(add) & set(revoke))
    if both:
        fail(f"{', '.join(both)} is both granted and revoked", "name each permission once")
    return frozenset((before & asked) | set(add)) - set(revoke)


def render_change(before: frozenset[str], after: frozenset[str]) -> None:
    added, removed = sorted(after - before), sorted(before - after)
    if not added and not removed:
        err_console.print(line("grants unchanged: " + (", ".join(sorted(after)) or "nothing")))
        return
    # The grants before are the install row's (host.db: whoever can write the store chose
    # them): every line inert (DESIGN rule 12).
    err_console.print(line("grants before: " + (", ".join(sorted(before)) or "nothing")))
    for p in added:
        err_console.print(line(f"  + {p}"), style="green")
    for p in removed:
        err_console.print(line(f"  - {p}"), style="red")
    err_console.print(line("grants after:  " + (", ".join(sorted(after)) or "nothing")))


def confirm_removal(removed: frozenset[str], yes: bool) -> None:
    if not removed or yes:
        return
    what = ", ".join(sorted(removed))
    if not is_interactive():
        fail(f"this removes {what}", "pass --yes to confirm (nothing changed)", EXIT_CONFIRM)
    if not _confirm(f"Remove {what}? The app gets PermissionDenied for it at once", False):
        fail("nothing changed: you declined", "", EXIT_NEGATIVE)


@app_app.command("consent")
def consent(
    ctx: typer.Context,
    ref: AppRef,
    grant: AddGrantOpt = None,
    revoke: RevokeOpt = None,
    reject: Annotated[bool, typer.Option("--reject", help="Discard the pending update.")] = False,
    transfer: TransferOpt = False,
    rest_as: RestAsOpt = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    json_out: JsonFlag = False,
) -> None:
    """Approve a pending update (shows the diff), or add (--grant) / remove (--revoke) grants.

    Without --grant or --revoke and with no pending update, re-confirms the grants (asks).
    """
    home: Home = ctx.obj
    existing_store(home, ref).close()
    store, keyring = _open(home)
    with store:
        rec = resolve(store, ref)
        # The REST identity a new consent carries on is the one a consent that verifies names
        # (as an update's and the console's): a row pointed back at an older consent naming
        # another user is no base, else "re-confirm" (the tampering hint) signs it afresh.
        identity = rest_identity(home, consented_terms(home, store, rec)[1], rest_as)
        pending = rec.pending
        if reject:
            if pending is None:
                fail(f"{rec.app_id} has no pending update", "nothing to reject")
            if not yes and not dry_run:
                if not is_interactive():
                    fail(f"this discards pending update {pending.version} of {rec.app_id}",
                         "pass --yes to confirm (nothing changed)", EXIT_CONFIRM)
                if not _confirm(f"Discard pending update {pending.version}?", False):
                    fail("nothing changed: you declined", "", EXIT_NEGATIVE)
            if not dry_run:
                with audit_app(home, "consent_reject", rec, version=pending.version):
                    reject_pending(home, store, rec)
            err_console.print(line(f"{'would discard' if dry_run else 'discarded'} pending "
                                   f"update {pending.version} of {rec.app_id}"))
            if json_out:
                emit_json({"status": "dry-run" if dry_run else "rejected",
                           "version": pending.version})
            return
        # Re-read the package from disk: the consent must bind what will actually run, not
        # whatever the database row says (it may be the thing that was tampered with).
        pkg = _read(pending.package_path if pending is not None else rec.package_path)
        # ... and it must be the package the install names: one swapped on disk would be
        # signed by this consent (refused before anything is shown or asked).
        swapped = consent_package_problem(rec, pkg)
        if swapped is not None:
            fail(swapped, SWAPPED_HINT, EXIT_NEGATIVE)
        sig = _signature(home, pkg)
        title = "Pending update" if pending is not None else "Re-confirm"
        disclosure = _disclose(home, pkg.manifest, pkg.content_hash, sig, rec, title=title,
                               rest_as=identity)
        diff = diff_manifests(rec.manifest, pkg.manifest, old_publisher=rec.publisher,
                              new_publisher=sig.to_dict())
        asked = pkg.manifest.asked
        before = rec.grants
        if pending is not None:
            render_diff(diff, disclosure, err_console)
            if diff.publisher_changed:
                # The install stays, so its data and secrets go to the new publisher's code.
                err_console.print(line(host(
                    f"  ! a transfer keeps this install: the new publisher's app reads "
                    f"{transfer_keeps(home, rec, pkg.manifest)}", "bold red")))
            if guardrail_problems(pkg.manifest) and not dry_run:
                reject_pending(home, store, rec)
            _refuse_guardrails(pkg.manifest)
            ask = asked if diff.publisher_changed else diff.added
            before = consented_grants(home, store, rec)
            if before != rec.grants:
                err_console.print(line(host(
                    f"{rec.app_id}'s grants do not verify against its signed consent: none "
                    "is carried to the update", "yellow")))
            already = frozenset() if diff.publisher_changed else grants_after(before, asked)
            if dry_run and not grant:
                grants = already
            else:
                if not grant:
                    # What no grant question covers (roles, the app user as an agent, events,
                    # secrets, a downgrade) gets its own yes, new permissions asked or not:
                    # else a "no" to every permission still approved it.
                    _confirm_widening(diff.widens_otherwise if ask else diff.needs_consent)
                grants = _grants(asked, grant, ask_about=ask, already=already)
            grants = grants - set(revoke or [])
            kind = "update"
        elif grant or revoke:
            # Add to what the operator's signed consent granted, never to the row as it stands:
            # a row whose grants were changed behind the host's back (it no longer verifies)
            # is no base; then the flags name the whole set, as at install.
            check = verify_install(rec, store, keyring, disable=False)
            held = rec.grants if check.ok else frozenset()
            if not check.ok:
                err_console.print(line(host(
                    f"{rec.app_id}'s grants do not verify ({check.problem}): only the "
                    "--grant flags are kept", "yellow")))
            grants = grant_change(held, asked, grant or [], revoke or [])
            before = held
            kind = "regrant"
        else:
            grants = rec.grants & asked if dry_run else _grants(asked, None)
            kind = "regrant"
        render_change(before, grants)
        if dry_run:
            err_console.print("dry run: nothing changed", highlight=False)
            if json_out:
                emit_json({"status": "dry-run", "before": sorted(before),
                           "after": sorted(grants), "added": sorted(grants - before),
                           "removed": sorted(before - grants)})
            return
        confirm_removal(before - grants, yes)
        try:
            apply_consent(home, store, rec, pkg, sig, grants, kind=kind,
                          policy_revision=disclosure.policy_revision, diff=diff.to_dict(),
                          before=before, rest_as=identity, transfer=transfer,
                          actor=operator_name())
        except StoredPackageChanged as exc:
            fail(str(exc), SWAPPED_HINT, EXIT_NEGATIVE)
        except InstallChanged as exc:  # another operator's change landed after our read
            fail(str(exc), "run it again: it will show the grants as they are now",
                 EXIT_NEGATIVE)
        except LineageError as exc:
            fail(str(exc), f"{TRANSFER_HINT} (an update's transfer also hands over "
                 f"{transfer_keeps(home, rec, pkg.manifest)})", EXIT_NEGATIVE)
        rec = store.get(rec.install_id) or rec
    err_console.print(line(host("consented", "green"), f": {rec.app_id} {rec.version} grants "
                           f"{', '.join(sorted(rec.grants)) or 'nothing'}"))
    if not rec.enabled:
        err_console.print(line(f"{rec.app_id} is disabled; enable it with `stockade app "
                               f"enable {rec.app_id}`"))
    if json_out:
        emit_json({"status": "consented", "install": rec.to_public_dict(),
                   "before": sorted(before), "after": sorted(rec.grants)})


def register(root: typer.Typer) -> None:
    """The command hangs on the `app` group (`host.cli.app_common.app_app`)."""
