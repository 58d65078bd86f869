"""What changes between two versions of an app: the permission diff an update is judged by.

An update that asks for nothing new applies at once (grants shrink to what is still asked); one
that asks for a new permission, or comes from a different publisher, waits for consent
(DESIGN rule 7) while the old version keeps running.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from host.apps.disclosure import Disclosure
from host.apps.manifest import Manifest


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

    @property
    def needs_consent(self) -> bool:
        """New access (or a new publisher) must be approved by the operator."""
        return bool(self.added) or self.publisher_changed

    def to_dict(self) -> dict[str, Any]:
        return {
            "old_version": self.old_version, "new_version": self.new_version,
            "added": sorted(self.added), "removed": sorted(self.removed),
            "kept": sorted(self.kept), "events_added": sorted(self.events_added),
            "events_removed": sorted(self.events_removed),
            "settings_added": sorted(self.settings_added),
            "settings_removed": sorted(self.settings_removed),
            "publisher_changed": self.publisher_changed, "needs_consent": self.needs_consent,
        }


def diff_manifests(old: Manifest, new: Manifest, *, old_publisher: Mapping[str, Any],
                   new_publisher: Mapping[str, Any]) -> PermissionDiff:
    """Compare what two manifests ask for. Publishers compare by signing key id."""
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
        publisher_changed=old_publisher.get("kid") != new_publisher.get("kid"),
    )


def grants_after(old_grants: frozenset[str], new_asked: frozenset[str]) -> frozenset[str]:
    """Grants carried to a new version without new consent: never more than before."""
    return old_grants & new_asked


def render_diff(diff: PermissionDiff, disclosure: Disclosure, console: Console) -> None:
    """Show the diff, marking new permissions that policy forbids or that touch roles."""
    console.print(f"[bold]Update {diff.old_version} → {diff.new_version}[/]", highlight=False)
    lines = {p.name: p for p in disclosure.permissions}
    for name in sorted(diff.added):
        p = lines.get(name)
        note = ""
        if p is not None and p.permitted is False:
            note = " [bold red](policy does not permit this: the app would get " \
                   "PermissionDenied)[/]"
        if name == "roles.assign":
            note += " [bold red](role assignment; admin-class roles are never assignable)[/]"
        risk = p.risk if p is not None else "?"
        reason = f" — “{p.reason}”" if p is not None else ""
        console.print(f"  [green]+ {name}[/] ({risk}){reason}{note}", highlight=False)
    for name in sorted(diff.removed):
        console.print(f"  [red]- {name}[/] (no longer asked; the grant is dropped)",
                      highlight=False)
    for ev in sorted(diff.events_added):
        console.print(f"  + event {ev}", highlight=False)
    for ev in sorted(diff.events_removed):
        console.print(f"  - event {ev}", highlight=False)
    if diff.publisher_changed:
        console.print("  [bold red]! the package is signed by a different publisher key[/]")
    if not diff.added and not diff.removed:
        console.print("  permissions unchanged")
