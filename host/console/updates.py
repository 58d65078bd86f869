"""Pending updates in the console: the queue, each one's diff and disclosure, approve or reject.

The same steps as `stockade app consent APP` (host/cli/app_consent_cmd.py): the pending package
is read again from disk (the consent binds what will run, not what a database row says), its
signature checked, its diff against the running version computed, and the disclosure built
against the home's policy. What the new version adds is asked for again (a box each, none
ticked); what it keeps stays granted; a new publisher's package asks for everything. Approving
signs the consent through `host.apps.operations.apply_consent`, the CLI's own path; rejecting
discards the pending update (`operator.consent_reject`). Admin-class roles in the new manifest
refuse it and discard it, as the CLI does.

Approve and reject name the package the operator reviewed (its content hash, a hidden field of
both forms): a different update parked since the page was read is refused (`Changed`) and
nothing changes, so a consent never lands on a version nobody looked at. Approve also names
who the page said published it (`shown_publisher`): the signature is checked again at the
click, against the trust store as it is then, and a publisher that reads differently (untrusted
meanwhile: its key leaked) is refused the same way; a package not signed by a trusted publisher
needs "I accept an unsigned package" ticked, as an install does. What no box covers (wider
roles, the app user made an agent, new events or secrets, a downgrade) needs its own tick when
the page has boxes, as `app consent` asks its own yes (`needs_widening_yes`).

A pending package that does not read, or is not the one parked (swapped on disk), is never
reviewed; it is rejected by the content hash the host recorded (`check_rejected`), which the
queue's Reject carries.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from host.apps.appdiff import PermissionDiff, diff_manifests, grants_after
from host.apps.consent import guardrail_problems
from host.apps.disclosure import Disclosure, build_disclosure, load_policy_view
from host.apps.installs import InstallChanged, InstallRecord, InstallStore
from host.apps.lineage import LineageError
from host.apps.operations import (
    apply_consent,
    consent_package_problem,
    consented_terms,
    reject_pending,
    submit_update,
)
from host.apps.packages import Package, PackageError, read_package
from host.apps.publisher import PublisherError, SignatureCheck, TrustStore, check_signature
from host.console.install import Refused, read_upload
from host.home import Home
from host.ledger.operator import audited


class Changed(Refused):
    """The update pending now is not the one the operator reviewed."""


@dataclass
class Review:
    rec: InstallRecord
    pkg: Package
    sig: SignatureCheck
    diff: PermissionDiff
    disclosure: Disclosure
    ask: frozenset[str]  # what needs a tick
    kept: frozenset[str]  # what stays granted without one
    guardrails: list[str]
    rest_as: str | None = None  # the REST identity the verified consent names (None: its own)
    # What the operator's signed consent grants the running version (nothing when the row does
    # not verify): the "grants before" of the approval's record, as `app consent` writes it.
    held: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Submitted:
    """What an uploaded update did: it waits for consent (it widens), or it applied at once,
    replacing the update that waited for consent (`dropped`, that one's version) if any."""

    waits: bool
    app_id: str
    dropped: str | None = None


def submit(home: Home, install_id: str, data: bytes, *, allow_unsigned: bool,
           actor: str) -> Submitted:
    """A new version uploaded for an installed app, checked as `stockade app update` checks
    it."""
    pkg = read_upload(data)
    with InstallStore(home.host_store) as store:
        rec = store.get(install_id)
        if rec is None:
            raise Refused("no such install")
        if pkg.app_id != rec.app_id:
            raise Refused(f"the package is app {pkg.app_id!r}, not {rec.app_id!r}")
        if pkg.content_hash == rec.package_hash:
            raise Refused(f"{rec.app_id} already runs this package ({rec.version})")
        try:
            sig = check_signature(pkg, TrustStore(home.trust_dir))
        except PublisherError as exc:
            raise Refused(str(exc)) from None
        if sig.status != "trusted" and not allow_unsigned:
            raise Refused("the package is not signed by a trusted publisher: tick \"I accept "
                          "an unsigned package\" only if you accept code nobody you trust "
                          "vouches for")
        problems = guardrail_problems(pkg.manifest)
        if problems:
            raise Refused("this version cannot be consented to: " + "; ".join(problems))
        policy, _why = load_policy_view(home.policies_dir)
        try:
            diff = submit_update(home, store, rec, pkg, sig,
                                 policy_revision=policy.revision if policy else None,
                                 actor=actor)
        except InstallChanged as exc:  # another operator's change landed after our read
            raise Changed(f"{exc}; upload it again") from None
    if diff.needs_consent:
        return Submitted(waits=True, app_id=rec.app_id)
    # As `app update` says it (and the chain's record names it): one applied at once replaces
    # the update that waited for consent, which was otherwise gone from the page unsaid.
    return Submitted(waits=False, app_id=rec.app_id,
                     dropped=rec.pending.version if rec.pending else None)


def queue(home: Home) -> list[InstallRecord]:
    """Installs with an update waiting for consent."""
    if not home.has_host_store():
        return []
    with InstallStore(home.host_store) as store:
        return [r for r in store.list() if r.pending is not None]


def pending_of(home: Home, install_id: str) -> InstallRecord:
    """The install, with the update pending for it (Refused when none is)."""
    with InstallStore(home.host_store) as store:
        rec = store.get(install_id)
    if rec is None or rec.pending is None:
        raise Refused("no pending update for that install")
    return rec


def review(home: Home, install_id: str) -> Review:
    rec = pending_of(home, install_id)
    assert rec.pending is not None
    try:
        pkg = read_package(rec.pending.package_path)
        sig = check_signature(pkg, TrustStore(home.trust_dir))
    except (PackageError, PublisherError) as exc:
        raise Refused(f"the pending package does not check out: {exc}; reject it") from None
    # The package on disk must be the one parked, as `app consent` holds before showing
    # anything: a file swapped behind the host's back is never shown as the pending update.
    swapped = consent_package_problem(rec, pkg)
    if swapped is not None:
        raise Changed(f"{swapped}; reject it")
    from host.gate.rest_routes import route_actions  # the gate's table, as the CLI passes it

    with InstallStore(home.host_store) as store:
        held, rest_as = consented_terms(home, store, rec)
    policy, _why = load_policy_view(home.policies_dir)
    # The REST identity the operator consented to is shown, as `app consent` shows it: the
    # approval signs it again, and a consent must never carry what the page did not say.
    disclosure = build_disclosure(pkg.manifest, pkg.content_hash, sig, policy,
                                  rest_as=rest_as, route_actions=route_actions)
    diff = diff_manifests(rec.manifest, pkg.manifest, old_publisher=rec.publisher,
                          new_publisher=sig.to_dict())
    asked = pkg.manifest.asked
    ask = asked if diff.publisher_changed else diff.added
    kept = frozenset() if diff.publisher_changed else grants_after(held, asked)
    return Review(rec, pkg, sig, diff, disclosure, frozenset(ask), kept,
                  guardrail_problems(pkg.manifest), rest_as, held)


def check_rejected(rec: InstallRecord, reviewed: str) -> None:
    """Raise `Changed` unless `reviewed` names the update pending for `rec`. A rejection needs
    no package read: one that no longer checks out (damaged, swapped) is discarded all the
    same, by the content hash the host recorded."""
    assert rec.pending is not None
    if not (reviewed and reviewed == rec.pending.package_hash):
        raise Changed(f"the update pending for {rec.app_id} is not the one you reviewed "
                      f"(now {rec.pending.version}): nothing was changed; review it again")


def check_reviewed(r: Review, reviewed: str) -> None:
    """Raise `Changed` unless `reviewed` (the content hash the review page carried) is the
    pending record's package and the package just read from disk. A security boundary: without
    it an approval applies whatever is pending at click time (DESIGN rule 7)."""
    assert r.rec.pending is not None
    if not (reviewed and reviewed == r.rec.pending.package_hash == r.pkg.content_hash):
        raise Changed(f"the update pending for {r.rec.app_id} is not the one you reviewed "
                      f"(now {r.rec.pending.version}): nothing was changed; review it again")


def shown_publisher(sig: SignatureCheck) -> str:
    """What the review page said about who published the package (status, key id, trusted
    name), as a digest its approve form carries back."""
    return hashlib.sha256(json.dumps(sig.to_dict(), sort_keys=True).encode()).hexdigest()


def check_publisher(r: Review, shown: str, *, allow_unsigned: bool) -> None:
    """Raise `Changed` unless the signature, read again now, is what the page showed (`shown`,
    its `shown_publisher`); `Refused` when it is not a trusted publisher's and the operator did
    not accept an unsigned package. A security boundary, as at an install's confirm: a consent
    never lands under a publisher line the operator did not read, nor on unvouched code
    without the operator saying so."""
    if shown != shown_publisher(r.sig):
        raise Changed(f"the publisher of the update pending for {r.rec.app_id} reads "
                      f"differently since you reviewed it (now: {r.sig.status}): nothing was "
                      "changed; review it again")
    if r.sig.status != "trusted" and not allow_unsigned:
        raise Refused("the package is not signed by a trusted publisher: tick \"I accept an "
                      "unsigned package\" only if you accept code nobody you trust vouches for")


def needs_widening_yes(r: Review) -> bool:
    """Whether approving needs its own yes for what no permission box covers (wider roles, the
    app user made an agent, new events or secrets, a downgrade), as `app consent` asks it: when
    there are boxes, declining every one must not approve those. Without boxes the approval
    itself is that yes."""
    return bool(r.ask) and r.diff.widens_otherwise


def approve(home: Home, r: Review, ticked: list[str], *, transfer: bool, actor: str,
            widening: bool = False) -> None:
    """Sign the consent to the reviewed update with the ticked grants and those it keeps.
    `widening`: the operator's own yes to what no box covers (see `needs_widening_yes`)."""
    if r.guardrails:
        reject(home, r.rec, actor=actor)
        raise Refused("the update cannot be consented to and was discarded: "
                      + "; ".join(r.guardrails))
    extra = sorted(set(ticked) - r.ask)
    if extra:
        raise Refused(f"not asked for by this update: {', '.join(extra)}")
    if needs_widening_yes(r) and not widening:
        raise Refused("this update also widens what no box covers (see What changes): tick "
                      "\"Also approve the changes no box covers\" to approve it; nothing changed")
    grants = r.kept | frozenset(ticked)
    with InstallStore(home.host_store) as store:
        try:
            apply_consent(home, store, r.rec, r.pkg, r.sig, grants, kind="update",
                          policy_revision=r.disclosure.policy_revision,
                          diff=r.diff.to_dict(), before=r.held,
                          rest_as=r.rest_as, transfer=transfer, actor=actor)
        except (LineageError, InstallChanged) as exc:  # changed meanwhile: nothing written
            raise Refused(str(exc)) from None


def reject(home: Home, rec: InstallRecord, *, actor: str) -> None:
    assert rec.pending is not None
    with InstallStore(home.host_store) as store, \
            audited(home.host_store, "consent_reject", actor=actor, app_id=rec.app_id,
                    install_id=rec.install_id, version=rec.pending.version):
        reject_pending(home, store, rec)


def diff_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    """The diff as (what, values) lines for the page, widening first: every widening the CLI's
    `render_diff` names (an update waits for consent on any of them, so the operator must see
    what Approve approves). The first column is the host's words; the second holds names
    (permissions, roles, departments, events, keys), which the page shows as data."""
    out: list[tuple[str, str]] = []
    if d.get("added"):
        out.append(("permissions added", ", ".join(d["added"])))
    for perm, roles in sorted((d.get("roles_widened") or {}).items()):
        out.append((f"roles widened on {perm}", "any role (the list was dropped)"
                    if "*" in roles else ", ".join(roles)))
    agent = d.get("agent_widened") or []
    if agent:
        deps = ", ".join(x for x in agent if x != "*")
        if "*" not in agent:
            out.append(("its app user joins departments", deps))
        elif deps:
            out.append(("its app user becomes a livechat agent, in departments", deps))
        else:
            out.append(("its app user becomes a livechat agent", "in no department"))
    events = d.get("events_added") or []
    if "message.pre_send" in events:
        out.append(("event added that sees every message before it is sent, and may change "
                    "or block it", "message.pre_send"))
    if any(e != "message.pre_send" for e in events):
        out.append(("events added", ", ".join(e for e in events if e != "message.pre_send")))
    for key, label in (("secrets_added", "secret settings added"),
                       ("removed", "permissions removed"), ("events_removed", "events removed"),
                       ("kept", "permissions kept")):
        if d.get(key):
            out.append((label, ", ".join(d[key])))
    if d.get("publisher_changed"):
        out.insert(0, ("publisher", "CHANGED: a different key signs this version"))
    if d.get("downgrade"):
        out.insert(0, ("version", "DOWNGRADE: older than the running version"))
    return out
