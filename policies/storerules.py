"""The rules of an app's stored records (`persistence.*`), pure, shared by the host's store
(`host/bridges/persistence.py`) and the app-author harness (`sandbox/harness_server.py`, which
imports nothing from `host`): one copy, so a key, association or value the host refuses is
refused in an author's test with the same words, and a value is measured as the host stores it
(canonical JSON in UTF-8)."""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

# Largest stored value (bytes of canonical JSON). Guards host.db and the wire: a value is sent
# back whole in one frame, and an app must not turn the host's database into its blob store.
MAX_VALUE_BYTES = 64 * 1024
# Longest key and association id (characters). Guards the index.
MAX_KEY_LEN = 256
# Deepest nesting of a value. Guards the host's JSON encoder/decoder against recursion limits.
MAX_DEPTH = 32
ASSOCIATION_KINDS = frozenset({"room", "user", "visitor", "message", "misc"})


class PersistenceError(ValueError):
    """The request breaks a rule (bad key, value too large, install full). App-facing text."""


@dataclass(frozen=True)
class Association:
    """What a record is about: kind ∈ ASSOCIATION_KINDS, id of that thing."""

    kind: str
    id: str


def check_key(key: object) -> str:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LEN:
        raise PersistenceError(f"key must be a non-empty string of at most {MAX_KEY_LEN} chars")
    if "\x00" in key:
        # PostgreSQL cannot hold it (a shared store); refused on every store alike.
        raise PersistenceError("key must not contain NUL characters")
    return key


def check_assoc(a: object) -> Association:
    # The gate hands over wire data: accept {"kind": ..., "id": ...} or [kind, id] as well.
    if isinstance(a, Mapping) and set(a) == {"kind", "id"}:
        a = Association(a["kind"], a["id"])
    elif isinstance(a, (list, tuple)) and len(a) == 2:
        a = Association(a[0], a[1])
    if not isinstance(a, Association) or not isinstance(a.kind, str) \
            or a.kind not in ASSOCIATION_KINDS:  # a list as kind: unhashable, no TypeError
        raise PersistenceError(
            f"association kind must be one of {', '.join(sorted(ASSOCIATION_KINDS))}")
    if not isinstance(a.id, str) or not 0 < len(a.id) <= MAX_KEY_LEN or "\x00" in a.id:
        raise PersistenceError(f"association id must be 1..{MAX_KEY_LEN} characters, no NUL")
    return a


def check_json(v: object, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise PersistenceError(f"value nested deeper than {MAX_DEPTH} levels")
    if v is None or isinstance(v, (bool, int, str)):
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            raise PersistenceError("value holds NaN or infinity (not JSON)")
        return
    if isinstance(v, (list, tuple)):
        for x in v:
            check_json(x, depth + 1)
        return
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise PersistenceError("object keys in a value must be strings")
            check_json(x, depth + 1)
        return
    raise PersistenceError(f"value holds a {type(v).__name__}, which is not JSON data")


def encode_value(value: object) -> str:
    """Canonical JSON of a value, validated and size-capped."""
    check_json(value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > MAX_VALUE_BYTES:
        raise PersistenceError(f"value larger than {MAX_VALUE_BYTES} bytes")
    return text
