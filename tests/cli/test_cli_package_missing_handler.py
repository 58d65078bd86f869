"""`app package` warns of an event app.toml lists that the app's class has no handler for.

The host delivers every event app.toml lists; a child whose class has no `on_<event>` answers
"done, nothing" (`sandbox/runtime.py`), so an author who added `livechat.room_closed` to
`events` and forgot (or misplaced) the method saw nothing anywhere: `app package` was silent,
the install disclosed the event, and each closed room was an event "ok" that did nothing. The
packager now says so, as it already does for the reverse (a handler for an event not listed).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)


def _new(cli: Run, tmp_path: Path) -> Path:
    folder = tmp_path / "greeter"
    assert cli("app", "new", "greeter", "--dir", str(folder)).exit_code == 0
    toml = folder / "app.toml"
    toml.write_text(toml.read_text().replace(
        'events = ["livechat.room_started"]',
        'events = ["livechat.room_started", "livechat.room_closed"]'))
    return folder


def test_an_event_listed_without_a_handler_warns(cli: Run, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _new(cli, tmp_path)
    monkeypatch.chdir(tmp_path)
    r = cli("app", "package", str(folder))
    assert r.exit_code == 0, r.output
    warning = [ln for ln in r.stderr.splitlines() if "livechat.room_closed" in ln]
    assert len(warning) == 1 and warning[0].startswith("warning:"), r.stderr
    assert "on_livechat_room_closed" in warning[0] and "Greeter" in warning[0]
    assert list(tmp_path.glob("greeter-*.zip"))  # a warning: the package is still written


def test_no_warning_when_a_base_class_may_hold_the_handler(
        cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A class deriving from one of the app's own classes may inherit the handler: what the
    source says cannot settle it without running it, so nothing is said."""
    folder = _new(cli, tmp_path)
    main = folder / "main.py"
    main.write_text(main.read_text().replace(
        "class Greeter(App):",
        "class Base(App):\n    def on_livechat_room_closed(self, ctx, event):\n"
        "        return None\n\n\nclass Greeter(Base):"))
    monkeypatch.chdir(tmp_path)
    r = cli("app", "package", str(folder))
    assert r.exit_code == 0, r.output
    assert "livechat.room_closed" not in r.stderr, r.stderr


def test_every_listed_event_handled_says_nothing(cli: Run, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _new(cli, tmp_path)
    main = folder / "main.py"
    main.write_text(main.read_text() + "\n    def on_livechat_room_closed(self, ctx, event):\n"
                    "        return None\n")
    monkeypatch.chdir(tmp_path)
    r = cli("app", "package", str(folder))
    assert r.exit_code == 0 and "warning" not in r.stderr, r.stderr
