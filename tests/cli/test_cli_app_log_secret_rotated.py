"""A secret setting's value an app printed (or put in an exception) is masked when the host
writes it to the app's log, not only when `app logs` shows the log. `app logs` masks the values
as they are when it runs: once the operator rotated the secret, the value printed before was
shown in clear (and it sat in the log file in clear all along)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from apphelp import install, settings_toml, write_app, write_policy
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures

from host.apps.installs import InstallStore
from host.home import Home
from host.runtime import Host, HostConfig

SOURCE = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        print("calling the CRM with key " + ctx.settings["api_key"])
        raise ValueError("the CRM refused key " + ctx.settings["api_key"])
'''
POLICY = '''
schema = 1
name = "crm"
[[rule]]
id = "crm"
effect = "permit"
apps = ["crm"]
actions = ["livechat.read"]
'''
OLD = "old-key-a7c2e9"  # what must show nowhere once rotated


def test_a_secret_printed_before_its_rotation_is_masked_after_it(cli: Run, home: Path) -> None:
    h = Home(home).ensure()
    write_policy(h, "crm", POLICY)
    rec = install(h, write_app(home.parent / "apps", "crm", ["livechat.read"],
                               ["livechat.room_started"], SOURCE, settings_toml("api_key")))
    with InstallStore(h.host_store) as store:
        store.set_settings(rec.install_id, {"api_key": OLD}, ["api_key"])
    with Host(h, config=HostConfig(watch=False)) as host:
        runner = next(iter(host.runners.values()))
        with pytest.raises(Exception, match="refused key"):  # its note quotes the exception
            runner.submit("livechat.room_started", {}, 10).result(20)
    with InstallStore(h.host_store) as store:  # the operator rotates the key
        store.set_settings(rec.install_id, {"api_key": "new-key-b8d3"}, ["api_key"])
    shown = json.loads(cli("app", "logs", "crm", "--json").stdout)["lines"]
    assert any("calling the CRM with key ********" in ln for ln in shown), shown
    assert any("refused key ********" in ln for ln in shown), shown
    assert OLD not in json.dumps(shown)
    assert OLD not in (h.logs_dir / f"{rec.install_id}.log").read_text()
