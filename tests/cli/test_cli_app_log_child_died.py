"""`app logs` says why an app's process stopped, not only that a handler failed.

An author's first mistake in production is often one the loader refuses at run time (`import
os` in main.py passes `app package` and `app install`: only the confined child knows). The host
audited the death ("app_error: main.py:2: ImportError: import of 'os' is not allowed ...") and
showed it in `app list --json`, but `stockade app logs APP` said "no log output" and `app list`
"restarting (backoff), 1 failed": nothing an author reads said what was wrong, or where. The
host now writes that reason as one note of its own in the app's log, as it does for a handler
that raised.
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
import os
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"
'''
POLICY = '''
schema = 1
name = "died"
[[rule]]
id = "died"
effect = "permit"
apps = ["importer"]
actions = ["livechat.read"]
'''


def test_a_child_that_fails_to_load_is_a_note_in_app_logs(cli: Run, home: Path) -> None:
    h = Home(home).ensure()
    write_policy(h, "died", POLICY)
    install(h, write_app(home.parent / "apps", "importer", ["livechat.read"],
                         ["livechat.room_started"], SOURCE))
    with Host(h, config=HostConfig(watch=False)) as host:
        runner = next(iter(host.runners.values()))
        with pytest.raises(Exception, match="import of 'os' is not allowed"):
            runner.submit("livechat.room_started", {}, 10).result(20)
    r = cli("app", "logs", "importer", "--json")
    assert r.exit_code == 0, r.output
    notes = [e["text"] for e in json.loads(r.stdout)["entries"] if e["from"] == "stockade"]
    assert notes, r.stdout  # one for each start that failed (the host's first, the event's)
    for note in notes:  # each one line: what is wrong, and where
        assert note.startswith("the app's process stopped: ") and "main.py:2" in note \
            and "import of 'os' is not allowed" in note, notes
    screen = cli("app", "logs", "importer").stderr
    assert "no log output" not in screen and " stockade: " in screen
