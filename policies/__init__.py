"""Stockade policy engine: pure, deterministic decisions over policy files (no I/O)."""
from __future__ import annotations
