"""An app's server write made in the gate's own transaction (the loan, `host/gate/onetx.py`) keeps
its place in the server's commit order (`host.server.core.CommitOrder`).

Such a write emitted its events right after the ledger's COMMIT, outside the order the server's
own writes keep: a visitor's message committed just after an app closed another room could reach
apps before that close. The interleaving is forced: the app's close is held after its commit,
before its events leave, while the message commits and returns.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy
from gatehelp import build_rig

from host.clock import SystemClock
from host.home import Home
from host.server.principals import SYSTEM

POLICY = '''
schema = 1
name = "rooms"
[[rule]]
id = "rooms"
effect = "permit"
apps = ["closer"]
actions = ["livechat.read", "livechat.write"]
'''


def _rig(tmp_path: Path) -> Any:
    home = Home(tmp_path / "home").ensure()
    home.default_policy.unlink(missing_ok=True)
    write_policy(home, "rooms", POLICY)
    install(home, write_app(tmp_path / "apps", "closer", ["livechat.read", "livechat.write"],
                            [], "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    return build_rig(home, SystemClock(), app_id="closer")


def test_a_lent_write_rolled_back_gives_its_place_up(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Its place is taken inside the admission: if the admission then rolls back (here its
    outcome record cannot be written), the place is given up, or no later event would leave."""
    from host.ledger import ledger as ledger_mod

    rig = _rig(tmp_path)
    server = rig.server
    seen: list[str] = []
    server.subscribe(lambda name, _payload: seen.append(name))
    v1 = server.save_visitor("visitor-one-token", "One")["id"]
    closing = server.visitor_start_room(v1)["id"]
    real = ledger_mod.append_in
    failed: list[int] = []

    def outcome_fails(c: Any, body: str, ts: float) -> int:
        if '"kind":"outcome"' in body and not failed:
            failed.append(1)
            raise OSError("disk trouble")
        return real(c, body, ts)

    monkeypatch.setattr(ledger_mod, "append_in", outcome_fails)
    with pytest.raises(Exception):
        rig.gate.handle(rig.session, "livechat.close_room", {"room_id": closing})
    assert failed
    seen.clear()
    v2 = server.save_visitor("visitor-two-token", "Two")["id"]
    talking = server.visitor_start_room(v2)["id"]
    server.visitor_send_message(v2, talking, "still heard")
    assert "message.sent" in seen and "livechat.room_started" in seen
    rig.close()


def test_an_apps_lent_write_keeps_its_place_among_the_servers_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = _rig(tmp_path)
    server = rig.server
    seen: list[str] = []
    server.subscribe(lambda name, _payload: seen.append(name))
    v1 = server.save_visitor("visitor-one-token", "One")["id"]
    closing = server.visitor_start_room(v1)["id"]
    v2 = server.save_visitor("visitor-two-token", "Two")["id"]
    talking = server.visitor_start_room(v2)["id"]
    committed, sent = threading.Event(), threading.Event()
    real_count = rig.gate._count

    def held(ok: bool) -> None:  # called after the admission's COMMIT, before its events leave
        if threading.current_thread().name == "app-close" and ok and not committed.is_set():
            committed.set()
            sent.wait(5)
        real_count(ok)

    monkeypatch.setattr(rig.gate, "_count", held)
    seen.clear()
    close = threading.Thread(target=rig.gate.handle, name="app-close",
                             args=(rig.session, "livechat.close_room", {"room_id": closing}))
    close.start()
    assert committed.wait(5), "the app's close never committed"
    server.visitor_send_message(v2, talking, "after the close")  # never waits for the held one
    sent.set()
    close.join(5)
    assert not server.livechat_get_room(SYSTEM, closing)["open"]
    assert [n for n in seen if n in ("livechat.room_closed", "message.sent")] == [
        "livechat.room_closed", "message.sent"]
    rig.close()


