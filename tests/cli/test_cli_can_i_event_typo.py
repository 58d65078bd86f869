"""`stockade can-i APP NAME` takes an action or an event; a misspelt event gets the event.

`can-i greeter livechat.room_start` (for the event `livechat.room_started`) said "unknown
action 'livechat.room_start'; did you mean 'livechat.list_rooms'?": the suggestion was drawn
from the actions alone, so the author was pointed at a bridge call they never meant.
"""
from __future__ import annotations

from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)


def test_a_misspelt_event_is_suggested_the_event(cli: Run, home: Path) -> None:
    r = cli("can-i", "greeter", "livechat.room_start")
    assert r.exit_code == 2, r.output
    assert "did you mean 'livechat.room_started'?" in r.stderr, r.stderr
    assert "unknown action or event 'livechat.room_start'" in r.stderr, r.stderr


def test_a_misspelt_action_is_still_suggested_the_action(cli: Run, home: Path) -> None:
    r = cli("can-i", "greeter", "users.creat")
    assert r.exit_code == 2 and "did you mean 'users.create'?" in r.stderr, r.stderr
