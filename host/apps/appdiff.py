"""What changes between two versions of an app: the permission diff an update is judged by.

An update that widens nothing applies at once (grants shrink to what is still asked). One that
widens any power waits for consent (DESIGN rules 7 and 11) while the old version keeps running:
a new permission, wider declared roles (or a dropped list, which means "any role"), a new event
(`message.pre_send` above all: it sees and may rewrite every human agent's message), a new
secret setting, a different publisher key (or unsigned after signed), or an older version.
HTTP domains and REST routes are granted by policy per app id, never by the package, so an
update reaches a new one only through a new permission, which is in this diff.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from host.apps.disclosure import Disclosure
from host.apps.lineage import binding_of
from host.apps.manifest import ROLE_PERMISSIONS, Manifest
from host.inert import author, host, line, one_row


@dataclass(frozen=True)
class PermissionDiff:
    old_version: str
    new_version: str
    added: frozenset[str]
    removed: frozenset[str]
    kept: frozenset[str]
    events_added: frozenset[str]
    events_removed: frozenset[str]
    settings_added: frozenset[str]
    settings_removed: frozenset[str]
    publisher_changed: bool
    # permission -> roles newly declared on it ("*" when the new version dropped the list)
    roles_widened: Mapping[str, frozenset[str]] = field(default_factory=dict)
    secrets_added: frozenset[str] = frozenset()
    downgrade: bool = False
    # On a kept livechat.agents: departments the app user would newly be routed from, with
    # "*" when the app user is newly declared an agent at all (the host acts on it at enable).
    agent_widened: frozenset[str] = frozenset()

    @property
    def needs_consent(self) -> bool:
        """Anything that widens power must be approved by the operator."""
        return bool(self.added or self.roles_widened or self.agent_widened or self.events_added
                    or self.secrets_added or self.publisher_changed or self.downgrade)

    @property
    def widens_otherwise(self) -> bool:
        """A widening no permission question covers: wider roles, the app user made an agent
        or put into more departments, a new event, a new secret, a downgrade."""
        return bool(self.roles_widened or self.agent_widened or self.events_added
                    or self.secrets_added or self.downgrade)

    def to_dict(self) -> dict[str, Any]:
        return {
            "old_version": self.old_version, "new_version": self.new_version,
            "added": sorted(self.added), "removed": sorted(self.removed),
            "kept": sorted(self.kept), "events_added": sorted(self.events_added),
            "events_removed": sorted(self.events_removed),
            "settings_added": sorted(self.settings_added),
            "settings_removed": sorted(self.settings_removed),
            "publisher_changed": self.publisher_changed,
            "roles_widened": {k: sorted(v) for k, v in sorted(self.roles_widened.items())},
            "secrets_added": sorted(self.secrets_added), "downgrade": self.downgrade,
            "agent_widened": sorted(self.agent_widened),
            "needs_consent": self.needs_consent,
        }


def diff_manifests(old: Manifest, new: Manifest, *, old_publisher: Mapping[str, Any],
                   new_publisher: Mapping[str, Any]) -> PermissionDiff:
    """Compare what two manifests ask for. Publishers compare by signing key id and by the
    lineage binding that key earns (`lineage.binding_of`): a version signed by the same key
    after the operator stopped trusting it is another publisher to the host, and waits."""
    old_keys = {s.key for s in old.setting}
    new_keys = {s.key for s in new.setting}
    return PermissionDiff(
        old_version=old.version, new_version=new.version,
        added=new.asked - old.asked, removed=old.asked - new.asked,
        kept=old.asked & new.asked,
        events_added=frozenset(new.events) - frozenset(old.events),
        events_removed=frozenset(old.events) - frozenset(new.events),
        settings_added=frozenset(new_keys - old_keys),
        settings_removed=frozenset(old_keys - new_keys),
        publisher_changed=(old_publisher.get("kid") != new_publisher.get("kid")
                           or binding_of(old_publisher) != binding_of(new_publisher)),
        roles_widened=_roles_widened(old, new),
        secrets_added=new.secret_keys - old.secret_keys,
        downgrade=version_key(new.version) < version_key(old.version),
        agent_widened=_agent_widened(old, new),
    )


def _agent_widened(old: Manifest, new: Manifest) -> frozenset[str]:
    if "livechat.agents" not in old.asked or "livechat.agents" not in new.asked:
        return frozenset()  # newly asked: in `added`, shown with its declaration
    before, after = old.app_user_agent(), new.app_user_agent()
    if after is None:
        return frozenset()
    if before is None:
        return frozenset({"*", *after})
    return frozenset(after) - frozenset(before)


def _roles_widened(old: Manifest, new: Manifest) -> dict[str, frozenset[str]]:
    """Roles the new version may use on a permission it kept that the old one could not.
    A permission newly asked is in `added` already (its roles are shown with it)."""
    out: dict[str, frozenset[str]] = {}
    for perm in ROLE_PERMISSIONS:
        if perm not in old.asked or perm not in new.asked:
            continue
        before, after = old.declared_roles(perm), new.declared_roles(perm)
        if before is None:
            continue  # it could already use any role
        if after is None:
            out[perm] = frozenset({"*"})
        elif after - before:
            out[perm] = after - before
    return out


def version_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
    """Order of MAJOR.MINOR.PATCH[-pre] versions, as semantic versioning has it: a pre-release
    sorts before its release, and its dot-separated identifiers compare one by one, numbers as
    numbers (rc.9 before rc.10: compared as text, going back from rc.10 to rc.9 would not be a
    downgrade, and would apply without consent) and below words."""
    core, _, pre = version.partition("-")
    major, minor, patch = (int(x) for x in core.split("."))
    tags = tuple((0, int(t), "") if t.isdigit() else (1, 0, t)
                 for t in pre.split(".")) if pre else ()
    return (major, minor, patch, 0 if pre else 1, tags)


def grants_after(old_grants: frozenset[str], new_asked: frozenset[str]) -> frozenset[str]:
    """Grants carried to a new version without new consent: never more than before."""
    return old_grants & new_asked


def render_diff(diff: PermissionDiff, disclosure: Disclosure, console: Console) -> None:
    """Show the diff, marking new permissions that policy forbids or that touch roles.

    Host marks (+, -, !) stand at fixed columns; the author's reason and role names are inert
    and quoted (DESIGN rule 12), so a reason cannot draw a fake "+" or "!" line of its own."""
    console.print(line(host("Update ", "bold"), host(diff.old_version, "bold"),
                       host(" → ", "bold"), host(diff.new_version, "bold")))
    lines = {p.name: p for p in disclosure.permissions}
    width = console.width
    for name in sorted(diff.added):
        p = lines.get(name)
        out = line(host(f"  + {name}", "green"), f" ({p.risk if p is not None else '?'})")
        if p is not None:
            out.append_text(line(" — ", author(p.reason)))
        # Cut to the screen (`one_row`): the host's own warnings stand on rows of their own,
        # so cutting a long reason never cuts them.
        console.print(one_row(out, width))
        if p is not None and p.permitted is False:
            console.print(host("      ! policy does not permit this: the app would get "
                               "PermissionDenied", "bold red"))
        if name == "roles.assign":
            console.print(host("      ! role assignment; admin-class roles are never "
                               "assignable", "bold red"))
    for name in sorted(diff.removed):
        console.print(line(host(f"  - {name}", "red"),
                           " (no longer asked; the grant is dropped)"))
    for perm, roles in sorted(diff.roles_widened.items()):
        # Role names are author text (DESIGN rule 12): inert, quoted, never read as markup.
        what = (host("any role (the list was dropped)", "bold red") if "*" in roles
                else author(", ".join(sorted(roles))))
        console.print(one_row(line(host(f"  + roles on {perm}: ", "bold red"), what), width))
    if diff.agent_widened:
        deps = sorted(diff.agent_widened - {"*"})
        verb = ("its app user becomes a livechat agent" if "*" in diff.agent_widened
                else "its app user joins departments")
        console.print(one_row(line(host(f"  + {verb}: ", "bold red"),
                                   author(", ".join(deps) or "-")), width))
    for ev in sorted(diff.events_added):
        out = line("  + event ", ev)
        if ev == "message.pre_send":
            out.append_text(host(" (sees every message before it is sent, and may change or "
                                 "block it)", "bold red"))
        console.print(out)
    for ev in sorted(diff.events_removed):
        console.print(line("  - event ", ev))
    for key in sorted(diff.secrets_added):
        console.print(line("  + secret setting ", key))
    if diff.downgrade:
        console.print(host(f"  ! {diff.new_version} is OLDER than {diff.old_version} "
                           "(a downgrade)", "bold red"))
    if diff.publisher_changed:
        console.print(host("  ! the package is signed by a different publisher key", "bold red"))
    if not diff.added and not diff.removed:
        console.print("  permissions unchanged")
