"""What a pre event's handler (`on_message_pre_send`) may answer, read by the host's pre-send
chain (`host/supervise/presend.py`) and checked by the author harness (`sandbox/harness.py`).

The host reads None (no opinion), `{"prevent": True, "reason": ...}` (stop the message) or
`{"text": ...}` (change it); it used to ignore any other answer without a word, so a hook that
returned `{"block": True}` or `False` to stop a message let every message through and nothing
said why. Pure: a function of the answer alone.
"""
from __future__ import annotations

from typing import Any

# The keys of an answer the host reads; any other key is a misspelling or a guess.
VERDICT_KEYS = frozenset({"prevent", "reason", "text"})
SHAPES = "None, {'prevent': True, 'reason': ...} or {'text': ...}"


def verdict_problem(verdict: Any) -> str | None:
    """Why the host cannot read `verdict` (a sentence quoting it, capped), or None."""
    if verdict is None:
        return None
    if isinstance(verdict, dict):
        unknown = sorted(str(k) for k in verdict if k not in VERDICT_KEYS)
        if not unknown:
            return None
        return (f"the pre-send hook answered with key(s) {repr(unknown)[:80]}: the host reads "
                f"{SHAPES}")
    return f"the pre-send hook answered {repr(verdict)[:80]}: the host reads {SHAPES}"
