"""Stockade host: the trusted side (supervisor, gate, tokens, stores, CLI, embedded server)."""
from __future__ import annotations

__version__ = "0.1.0"
