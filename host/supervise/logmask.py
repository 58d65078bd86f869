"""One event's (or load's) output masked as a stream: a secret value split across Log frames.

The host masks an app's secret settings' values in what it writes to the app's log
(`applog.AppLog`), but it masked each Log frame alone, and the child decides where frames
end: each print flush, each bridge call, and, for code that escaped the runtime, anywhere at
all. A value whose first bytes ended one frame and whose rest began the next was written in
clear, on two log lines (and `app logs`, which masks the file's text, never saw it whole
either). So the end of a frame that could be the start of a value (a proper prefix of one) is
held back and put before the next frame of the same event, and masking runs on the joined
text. What is held is at most the longest value less one character (a value is at most
`manifest.MAX_SETTING_VALUE` characters), and only until the event's next frame or its end:
the log is never held back further. A frame the child marked as cut (its print cap), or an
event whose output the host's cap cut (`logcap.LogBudget`), ends mid-text: a value's start
there is masked, never written (before, the cut wrote a value's first characters in clear).

This guards against an app's output disclosing a value by accident. It does not stop an app
from writing its own secret on purpose: the app holds the value, and can print it reversed.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from host.apps.installs import SECRET_MASK, mask_secrets


def pending_start(text: str, values: Sequence[str]) -> int:
    """How many characters at the end of `text` are a proper prefix of one of `values` (the
    most such characters; 0 when none): what may be the start of a value the next frame ends.
    At most the longest value's length less one."""
    n, best = len(text), 0
    for value in values:
        if len(value) < 2:
            continue  # a one-character value has no proper prefix to wait for
        lo = max(0, n - len(value) + 1)
        first = value[0]
        i = text.find(first, lo, n - best)  # starts left of n - best: longer than `best`
        while i != -1:
            if value.startswith(text[i:]):
                best = n - i
                break
            i = text.find(first, i + 1, n - best)
    return best


def masked_to_the_end(text: str, values: Sequence[str]) -> str:
    """`text` masked (`mask_secrets`), and a value's start at its very end masked too: for text
    cut there (a frame cut at the print cap, the first `MAX_STDERR_KEPT` bytes of a dead child's
    stderr), where the rest of the value may have followed."""
    text = mask_secrets(text, list(values))
    k = pending_start(text, values)
    return text[:-k] + SECRET_MASK if k else text


class MaskedStream:
    """The sink one event's (or load's) Log frames go through (`logcap.LogBudget` opens one
    per event with `AppLog.stream`): masks `values` across frame boundaries, then hands the
    text to `write` (see the module docstring). `end` is called once, when the event is over."""

    __slots__ = ("_held", "_note", "_values", "_write")

    def __init__(self, write: Callable[[str, bool], None], note: Callable[[str], None],
                 values: Sequence[str]) -> None:
        self._write, self._note, self._values = write, note, tuple(values)
        self._held = ""

    def __call__(self, text: str, truncated: bool) -> None:
        values = self._values
        if not values:
            self._write(text, truncated)
            return
        text, self._held = self._held + text, ""
        if truncated:  # the child cut its output here: a value's start is all there is
            text = masked_to_the_end(text, values)
        else:
            text = mask_secrets(text, list(values))
            k = pending_start(text, values)
            if k:
                text, self._held = text[:-k], text[-k:]
        if text or truncated:
            self._write(text, truncated)

    def note(self, text: str) -> None:
        self._note(text)

    def end(self, cut: bool) -> None:
        """The event is over. What was held is written as it is (the app's output ended with
        it, a value's start and nothing more), or masked when the host's cap cut the output
        there (`cut`): the rest of the value may have followed."""
        held, self._held = self._held, ""
        if held:
            self._write(SECRET_MASK if cut else held, False)
