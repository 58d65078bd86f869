"""One policy file as read, shared by the loader (which makes it) and the linter (which judges
it); it lives below both so neither imports the other."""
from __future__ import annotations

from dataclasses import dataclass

from policies.locate import Locator
from policies.model import PolicyFile


@dataclass
class SourceFile:
    """One policy file as read: its text, the validated model (None if invalid) and a locator."""

    name: str
    text: str
    model: PolicyFile | None
    locator: Locator
