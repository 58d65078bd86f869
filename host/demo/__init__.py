"""`stockade demo`: the whole product, narrated, in a fresh temporary home."""
from __future__ import annotations
