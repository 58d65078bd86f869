"""The `stockade` command line (typer + rich)."""
from __future__ import annotations
