"""An app's log tells the host's notes from the app's output (DESIGN rule 12).

The host writes notes into an app's log (a handler that failed, events dropped, output cut, a
stop for refusals). They used to be written as `STAMP [stockade] ...`, exactly as the app's own
printed lines were (`STAMP TEXT`): an app printing "[stockade] handler ... failed" put a line
in its log that `stockade app logs` showed just like the host's, and an exception message with
a line break in it started a second, app-written line inside a genuine note. Each line now says
who wrote it (`host/supervise/applog.py`), and `app logs` shows only the host's notes without
the app's gutter.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures

from host.home import Home
from host.runtime import Host, HostConfig

SOURCE = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        print(event["print"])
        if event.get("fail"):
            raise ValueError(event["fail"])
        return "ok"
'''
POLICY = '''
schema = 1
name = "notes"
[[rule]]
id = "notes"
effect = "permit"
apps = ["forger"]
actions = ["livechat.read"]
'''
FORGED = "stockade: handler livechat.room_started failed: app_error: forged by the app"


def test_nothing_an_app_prints_reads_as_a_note_of_the_hosts(cli: Run, home: Path) -> None:
    h = Home(home).ensure()
    write_policy(h, "notes", POLICY)
    install(h, write_app(home.parent / "apps", "forger", ["livechat.read"],
                         ["livechat.room_started"], SOURCE))
    with Host(h, config=HostConfig(watch=False)) as host:
        runner = next(iter(host.runners.values()))
        with pytest.raises(Exception, match="boom"):  # a genuine note: the handler failed
            runner.submit("livechat.room_started", {
                "print": "[stockade] " + FORGED,
                "fail": "boom\n" + FORGED}, 10).result(20)
        assert runner.submit("livechat.room_started", {"print": FORGED}, 10).result(20) == "ok"
    screen = cli("app", "logs", "forger").stderr.splitlines()
    ungutted = [ln for ln in screen if not ln.startswith("│ ")]
    # The one real note: its first row at column 0, the rest of it wrapped in its own column
    # (indented, never at column 0); everything the app printed stays behind the gutter.
    assert " stockade: handler livechat.room_started failed" in ungutted[0]
    assert all(ln.startswith(" ") for ln in ungutted[1:]), ungutted
    assert "boom" in " ".join(ungutted)  # shown whole now, no longer cut at the screen's edge
    notes = [e["text"] for e in json.loads(cli("app", "logs", "forger", "--json").stdout)[
        "entries"] if e["from"] == "stockade"]
    assert len(notes) == 1 and "boom" in notes[0]
    r = cli("app", "logs", "forger", "--json")
    assert r.exit_code == 0, r.output
    entries = json.loads(r.stdout)["entries"]
    notes = [e["text"] for e in entries if e["from"] == "stockade"]
    printed = [e["text"] for e in entries if e["from"] == "app"]
    assert len(notes) == 1 and "boom" in notes[0]  # the failure, one line
    assert "⏎" + FORGED in notes[0]  # the message's line break shown, not kept
    assert printed == ["[stockade] " + FORGED, FORGED]  # the app's, as the app's


def test_an_earlier_releases_log_is_set_aside_and_read_as_the_apps(cli: Run, home: Path) -> None:
    """A log written before this format (`STAMP TEXT` for everything): an app that printed
    "stockade: ..." there has a line that reads as this format's host note. The first write in
    this format moves such a file to `.1` and starts a new one; `app logs` on a file still in
    the old format shows each of its lines as the app's."""
    h = Home(home).ensure()
    write_policy(h, "notes", POLICY)
    install(h, write_app(home.parent / "apps", "forger", ["livechat.read"],
                         ["livechat.room_started"], SOURCE))
    from host.apps.installs import InstallStore

    with InstallStore(h.host_store) as store:
        [rec] = store.list()
    log = h.logs_dir / f"{rec.install_id}.log"
    log.write_text(f"2026-12-01T10:00:00 {FORGED}\n2026-12-01T10:00:01 hello\n")
    r = cli("app", "logs", "forger", "--json")
    entries = json.loads(r.stdout)["entries"]
    assert [e["from"] for e in entries] == ["app", "app"], entries
    assert entries[0]["text"] == FORGED and entries[0]["ts"] == "2026-12-01T10:00:00"
    with Host(h, config=HostConfig(watch=False)) as host:
        runner = next(iter(host.runners.values()))
        assert runner.submit("livechat.room_started", {"print": "new"}, 10).result(20) == "ok"
    assert (h.logs_dir / f"{rec.install_id}.log.1").read_text().startswith(
        f"2026-12-01T10:00:00 {FORGED}")
    entries = json.loads(cli("app", "logs", "forger", "--json").stdout)["entries"]
    assert [(e["from"], e["text"]) for e in entries] == [("app", "new")], entries


def _installed_log(cli: Run, home: Path) -> Path:
    h = Home(home).ensure()
    write_policy(h, "notes", POLICY)
    rec = install(h, write_app(home.parent / "apps", "forger", ["livechat.read"],
                               ["livechat.room_started"], SOURCE))
    log = h.logs_dir / f"{rec.install_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return log


def test_a_tail_window_cut_inside_a_line_drops_that_line(cli: Run, home: Path) -> None:
    """`app logs` reads the last MiB of the log and parsed its first, partial line as a whole
    one: an app sizing its output so that the cut lands inside one of its own lines made the
    rest of that line a host note (no gutter; `from: stockade` in --json)."""
    from host.supervise import applog

    log = _installed_log(cli, home)
    stamp_and_mark = 19 + 1 + len(applog.APP_MARK)
    forged = "2026-01-01T00:00:00 stockade: the operator approved users.create (audited)"
    after = (1 << 20) - (len(forged) + 1)  # the bytes after it: the window starts on it
    n, rest = divmod(after, stamp_and_mark + 1001)
    n -= 1
    rest += stamp_and_mark + 1001
    tail = ("y" * 1000 + "\n") * n + "z" * (rest - stamp_and_mark - 1) + "\n"
    applog.write_output(log, "app is starting\n", False)
    applog.write_output(log, "padding-" + forged + "\n" + tail, False)
    entries = json.loads(cli("app", "logs", "forger", "--json", "-n", "100000").stdout)
    assert not [e for e in entries["entries"] if e["from"] == "stockade"], entries["entries"][:2]
    screen = cli("app", "logs", "forger", "-n", "100000").stderr.splitlines()
    assert all(ln.startswith("│ ") for ln in screen), screen[:2]


def test_a_long_app_line_is_wrapped_behind_its_gutter(cli: Run, home: Path) -> None:
    """An app line padded to the screen's width wrapped, and the terminal showed its rest at
    column 0 of the next row, outside the gutter, reading as a host note. Each row now fits the
    screen and starts with the gutter, and nothing of the line is lost."""
    from host.cli.output import err_console
    from host.supervise import applog

    log = _installed_log(cli, home)
    width = err_console.width
    forged = "2026-01-01T00:00:00 stockade: handler failed: ValueError"
    applog.write_output(log, " " * width + forged + " " * width + "x\n", False)
    screen = cli("app", "logs", "forger").stderr.splitlines()
    assert screen and all(len(ln) <= width and ln.startswith("│ ") for ln in screen), screen
    assert "".join(ln.removeprefix("│ ").strip() for ln in screen).endswith("x")


def test_a_note_longer_than_the_screen_is_shown_whole(cli: Run, home: Path) -> None:
    """A load failure's reason ran past 80 columns and was cut at the screen's edge ("main.py:2:
    …"): the operator saw no reason without --json. It wraps in its own column now."""
    from host.cli.output import err_console
    from host.supervise import applog

    log = _installed_log(cli, home)
    reason = ("the app's process stopped: main.py:2: import of 'os' is not allowed (the loader "
              "refuses it at start); the end of the reason is here")
    applog.write_note(log, reason)
    screen = cli("app", "logs", "forger").stderr.splitlines()
    assert all(len(ln) <= err_console.width for ln in screen), screen
    assert screen[0].split(" stockade: ", 1)[1].startswith("the app's process stopped")
    assert all(ln.startswith(" ") for ln in screen[1:]), screen
    assert " ".join(ln.strip() for ln in screen).endswith("the end of the reason is here")
