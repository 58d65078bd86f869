"""A hand-made event payload with a key the host never sends is refused by the harness.

`h.fire(event, payload)` took any payload. An author who wrote `{"room_id": ...}` for
`livechat.room_closed` (whose payload is `{"room", "closed_by"}`) and read `event["room_id"]`
in the handler passed the test, and the handler raised KeyError on every real event. The
harness now refuses a top-level key the event's payload does not have (the vocabulary's keys,
which docs/EVENTS.md shows and a test holds equal to the server's payload types); a payload
missing keys is still the author's to give (a test may need only part of it).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from harness_helpers import write_app

from policies.vocabulary import EVENTS
from sandbox.harness import AppHarness, HarnessError

SOURCE = '''
from stockade import App
class Probe(App):
    def on_livechat_room_closed(self, ctx, event):
        return event["room_id"]
'''


def _harness(tmp_path: Path) -> AppHarness:
    return AppHarness.from_dir(write_app(tmp_path, source=SOURCE,
                                         events=("livechat.room_closed",)))


def test_a_key_the_host_never_sends_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"no key 'room_id' \(the host sends room, closed_by") as caught:
        _harness(tmp_path).fire("livechat.room_closed", {"room_id": "r1"})
    assert "docs/EVENTS.md" in str(caught.value)


def test_author_text_in_the_refusal_is_quoted(tmp_path: Path) -> None:
    with pytest.raises(HarnessError) as caught:
        _harness(tmp_path).fire("livechat.room_closed", {"x\x1b[31m\nforged": 1})
    assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)


def test_the_payloads_the_harness_makes_pass(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    room = h.start_room(h.add_visitor(name="Ann")["id"])["room"]["id"]
    closed = h.close_room(room, by_visitor=True)
    assert set(closed) == {k for k, _ in EVENTS["livechat.room_closed"].payload}
    with pytest.raises(KeyError):  # delivered: the handler's own mistake, as in the host
        h.fire("livechat.room_closed", closed)
    with pytest.raises(KeyError):  # a partial payload is delivered too
        h.fire("livechat.room_closed", {"room": closed["room"]})
