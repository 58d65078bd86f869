"""Host keys rotate without downtime on a serving host (issue 19): the CLI rotates the host key
and re-signs an app's consent while `Host` serves; the running host follows the keyring, so the
app is not disabled as "tampering detected" and its next event succeeds. A key retired while a
child holds a token it signed stops that token: the child is started again with the current key.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apphelp import install, write_app
from typer.testing import CliRunner

from host.cli.main import root
from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.supervisor import AppRunner

SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok:" + str(event.get("n"))
'''


def _cli(home: Home, *args: str) -> dict[str, object]:
    r = CliRunner().invoke(root, ["--home", str(home.root), *args, "--json"])
    assert r.exit_code == 0, (args, r.stdout, r.exception)
    out: dict[str, object] = json.loads(r.stdout)
    return out


def _until(pred: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Home, Host]]:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "keyed", ["livechat.read"],
                            ["livechat.room_started"], SRC))
    host = Host(home, config=HostConfig(event_deadline_s=5.0)).start()
    yield home, host
    host.stop()


def _runner(host: Host) -> AppRunner | None:
    return next(iter(host.runners.values()), None)


def _event(host: Host, n: int) -> object:
    runner = _runner(host)
    assert runner is not None, "the app is not running"
    return runner.submit("livechat.room_started", {"n": n}, 5.0).result(15)


def _token_kid(host: Host) -> str | None:
    runner = _runner(host)
    return None if runner is None or runner.session is None else runner.session.claims.kid


def test_rotate_then_reconsent_on_a_serving_host_keeps_the_app_running(served) -> None:  # type: ignore[no-untyped-def]
    home, host = served
    assert _event(host, 1) == "ok:1"
    gen = _runner(host).install.generation  # type: ignore[union-attr]
    new = _cli(home, "keys", "host-rotate")["current"]
    _cli(home, "app", "consent", "keyed", "--grant", "livechat.read")  # signed by the new key
    _until(lambda: (r := _runner(host)) is not None and r.install.generation > gen,
           "the host to pick up the new consent")
    info = _cli(home, "app", "info", "keyed")
    assert info["enabled"] and info["consent_ok"], info  # not "tampering detected"
    assert _event(host, 2) == "ok:2"
    assert _token_kid(host) == new  # the running host signs with the rotated key too


def test_a_retired_key_stops_the_tokens_it_signed_on_a_serving_host(served) -> None:  # type: ignore[no-untyped-def]
    home, host = served
    assert _event(host, 1) == "ok:1"
    k2 = _cli(home, "keys", "host-rotate")["current"]
    # its token revoked, the app is started again with one by k2, the consent staying by the
    # first key (an enable or disable would sign one by k2 now: each switch is a signed
    # consent, host/apps/switches.py)
    first = _runner(host)
    _cli(home, "app", "tokens", "keyed", "--revoke", "all")
    _until(lambda: _runner(host) not in (None, first), "the app to be started again")
    assert _event(host, 2) == "ok:2"
    assert _token_kid(host) == k2
    old = _runner(host)
    k3 = _cli(home, "keys", "host-rotate")["current"]
    _cli(home, "keys", "host-retire", str(k2))  # no consent depends on k2
    _until(lambda: _runner(host) not in (None, old),  # None: stopped, not yet started again
           "the child holding a k2 token to be replaced")
    assert _event(host, 3) == "ok:3"
    assert _token_kid(host) == k3
