"""A child whose token was minted with a key the operator retires while the child is still
starting is started again with a fresh token once it is up, like every other holder of a
retired key's token ("a retired host key verifies nothing, tokens already accepted included").

The watcher's sync skips a runner that is starting (it revoked its earlier token itself and
holds the old session until its handshake ends); before the fix, nothing synced again after
that one pass, so such a child ran on, its bridge calls admitted, until an unrelated change."""
from __future__ import annotations

import json
import time
from pathlib import Path

from apphelp import install, write_app
from typer.testing import CliRunner

from host.cli.main import root
from host.home import Home
from host.keys.tokens import Claims
from host.runtime import Host, HostConfig

SRC = '''
from stockade import App
class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"
'''


def _until(check: object, what: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < end, f"timed out: {what}"
        time.sleep(0.02)


def test_a_token_minted_with_a_key_retired_during_its_start_does_not_stay(
        tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "tok", ["livechat.read"],
                            ["livechat.room_started"], SRC))

    def cli(*args: str) -> dict[str, object]:
        r = CliRunner().invoke(root, ["--home", str(home.root), *args, "--json"])
        assert r.exit_code == 0, (args, r.stdout, r.exception)
        out: dict[str, object] = json.loads(r.stdout)
        return out

    with Host(home, config=HostConfig(event_deadline_s=5.0, use_zygote=False)) as host:
        k1 = str(cli("keys", "host-rotate")["current"])  # consents stay signed by the first key
        _until(lambda: host.keyring.current == k1, "the host to see the rotation")
        runner = next(iter(host.runners.values()))
        if runner.child is not None:  # started already: stop it, the next event starts anew
            runner.child.kill("test: start again", code="test")
            _until(lambda: runner.child is None or runner.child.dead, "the kill")
            time.sleep(1.0)  # past the restart's backoff
        record = host.credentials.record

        def retire_meanwhile(claims: Claims) -> None:
            # On the runner's thread, after the mint and before the handshake: the operator
            # rotates away from k1 and retires it, and the watcher syncs while this starts.
            assert claims.kid == k1
            cli("keys", "host-rotate")
            cli("keys", "host-retire", k1)
            _until(lambda: k1 in host.keyring.retired, "the host to see the retirement")
            time.sleep(0.6)  # the watcher's sync ran meanwhile (and skipped this runner)
            record(claims)
        host.credentials.record = retire_meanwhile  # type: ignore[method-assign]
        assert runner.submit("livechat.room_started", {}, 5.0).result(15) == "ok"
        host.credentials.record = record  # type: ignore[method-assign]

        def replaced() -> bool:
            now = host.runners.get(runner.install_id)  # none while a sync swaps it
            return now is not None and now is not runner
        _until(replaced, "the child holding a retired key's token to be started again", 5.0)
        now = host.runners[runner.install_id]
        assert now.submit("livechat.room_started", {}, 5.0).result(15) == "ok"
        assert now.session is not None and now.session.claims.kid != k1
