"""The host's reason for an app's death stays the host's: an app cannot write it.

A runner's `last_error` (what `app list --json` and the console's apps page show as why an
app is not running) was the host's reason, " | ", then what the dead child wrote to stderr,
published as its last 300 characters: an app whose child wrote 400 characters and died pushed
the host's reason out, and the page showed only the app's words, e.g. a made-up "disabled by
operator" with a command to run. Now the reason and the app's stderr are apart (`last_error`,
`last_crash`); the audit record still holds both, the host's reason first.

Attacked with a real host and a real confined child whose app escaped (`escapehost`).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from apphelp import install, write_app
from audithelp import audit_bodies
from escapehost import PRELUDE, escape_apps

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.child import ChildDied

FORGED = ("disabled by operator in the console: policy requires "
          "`stockade app consent dier --grant server.rest` to resume")
DIER = PRELUDE + f'''

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        sys.stderr.write("." * 400 + {FORGED!r})
        sys.stderr.flush()
        sys.modules["os"]._exit(1)
'''


def test_an_apps_stderr_never_replaces_the_hosts_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    escape_apps(monkeypatch, tmp_path)
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "dier", ["livechat.read"],
                            ["livechat.room_started"], DIER))
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        (runner,) = host.runners.values()
        with pytest.raises(ChildDied):
            runner.submit("livechat.room_started", {}, 10.0).result(30)
        status = runner.status()
    # before: last_error was "....disabled by operator in the console: ..." and nothing else
    assert FORGED not in status["last_error"], status
    assert status["last_error"].startswith("child exited"), status
    assert status["last_crash"].endswith(FORGED)  # kept, as the app's own words
    died = [b for b in audit_bodies(home) if b.get("event") == "child_died"]
    assert died and died[-1]["detail"].startswith("child exited with code 1 | ..."), died
