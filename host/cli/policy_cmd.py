"""`stockade policy` (not yet implemented)."""
from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    """Mount this group's commands on the root CLI."""
