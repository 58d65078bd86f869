"""What a dead child wrote to stderr (the app's words: `last_crash`, and the tail of the
`child_died` audit record's detail) has the app's secret settings' values masked, as its log
has (`AppRunner._masked`). It went into the hash chain, `app list --json` and the console's
apps page in clear: a secret an app's crash text held was in every audit export for good.

Attacked with a real host and a real confined child whose app escaped (`escapehost`), writing
its key to stderr and exiting."""
from __future__ import annotations

from pathlib import Path

import pytest
from apphelp import install, settings_toml, write_app
from audithelp import audit_bodies
from escapehost import PRELUDE, escape_apps

from host.apps.installs import InstallStore
from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.child import ChildDied

KEY = "crash-key-3e1f9a"  # what must show nowhere
DIER = PRELUDE + '''

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        sys.stderr.write("fatal: the CRM refused key " + ctx.settings["api_key"])
        sys.stderr.flush()
        sys.modules["os"]._exit(1)
'''


def test_a_dead_childs_stderr_never_carries_its_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    escape_apps(monkeypatch, tmp_path)
    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(tmp_path / "apps", "dier", ["livechat.read"],
                                  ["livechat.room_started"], DIER, settings_toml("api_key")))
    with InstallStore(home.host_store) as store:
        store.set_settings(rec.install_id, {"api_key": KEY}, ["api_key"])
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        (runner,) = host.runners.values()
        with pytest.raises(ChildDied):
            runner.submit("livechat.room_started", {}, 10.0).result(30)
        status = runner.status()
    assert status["last_crash"].endswith("refused key ********"), status
    died = [b for b in audit_bodies(home) if b.get("event") == "child_died"]
    assert died and died[-1]["detail"].endswith("refused key ********"), died
    assert KEY not in str(audit_bodies(home))
