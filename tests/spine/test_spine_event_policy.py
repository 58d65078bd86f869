"""The host's event filter by policy (`host.gate.eventpolicy`): cached off the hot path, dropped
when the policy reloads, and carried through a restart's hand-over."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy

import host.gate.eventpolicy as eventpolicy
from host.apps.installs import InstallRecord
from host.gate.eventpolicy import EventPolicy
from host.home import Home
from host.runtime import Host, HostConfig
from policies.loader import load_policy_text

SRC = '''
from stockade import App

class TestApp(App):
    def on_message_sent(self, ctx, event):
        return "seen"
'''
PERMIT = '''
schema = 1
name = "reads"
[[rule]]
id = "reads"
effect = "permit"
apps = ["reader"]
actions = ["messages.read"]
'''
FORBID = '''
schema = 1
name = "forbid"
[[rule]]
id = "no-list"
effect = "forbid"
apps = ["reader"]
actions = ["messages.list"]
'''


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every decision the event filter makes (not the ones it finds cached)."""
    made: list[str] = []
    real = eventpolicy.decide_event

    def counting(*args: Any) -> Any:
        made.append(args[-1])
        return real(*args)

    monkeypatch.setattr(eventpolicy, "decide_event", counting)
    return made


def _host(tmp_path: Path) -> tuple[Home, Host]:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "reads", PERMIT)
    install(home, write_app(tmp_path / "apps", "reader", ["messages.read"], ["message.sent"], SRC))
    return home, Host(home, config=HostConfig())


def test_receivers_are_decided_once_and_dropped_when_the_policy_reloads(
        tmp_path: Path, counted: list[str]) -> None:
    home, h = _host(tmp_path)
    with h:
        first = h._receivers("message.sent")
        assert [r.app_id for r in first] == ["reader"] and counted == ["message.sent"]
        for _ in range(1000):  # the hot path: one dict look-up, no decision
            assert h._receivers("message.sent") is first
        assert counted == ["message.sent"]
        h._receivers_cache = {}  # what an install change does: decisions stay cached beneath
        assert [r.app_id for r in h._receivers("message.sent")] == ["reader"]
        assert counted == ["message.sent"]

        write_policy(home, "forbid", FORBID)
        h.policy_watch.poll()  # a change is used once it has held still for a poll
        assert h.policy_watch.poll().refused is None
        assert h._receivers("message.sent") == ()  # at once: no stale receiver list
        assert len(counted) == 2
        assert h.dispatch("message.sent", {"n": 1}).app_ids == ()

        (home.policies_dir / "forbid.toml").unlink()
        h.policy_watch.poll()  # a change is used once it has held still for a poll
        assert h.policy_watch.poll().refused is None
        assert [r.app_id for r in h._receivers("message.sent")] == ["reader"]
        assert len(counted) == 3
    log = (home.logs_dir / f"{next(iter(h.installs.list())).install_id}.log").read_text()
    assert log.count("events message.sent are not delivered to this app") == 1


def test_a_refused_policy_change_keeps_the_cache(tmp_path: Path, counted: list[str]) -> None:
    home, h = _host(tmp_path)
    with h:
        first = h._receivers("message.sent")
        (home.policies_dir / "broken.toml").write_text("schema = 1\nname = \n")
        h.policy_watch.poll()  # a change is used once it has held still for a poll
        assert h.policy_watch.poll().refused
        assert h._receivers("message.sent") is first and len(counted) == 1


def _rec(tmp_path: Path, grants: list[str]) -> InstallRecord:
    home = Home(tmp_path / "home").ensure()
    return install(home, write_app(tmp_path / "apps", "reader", ["messages.read"],
                                   ["message.sent"], SRC), grants=grants)


def test_the_filter_keys_on_the_policy_object_and_the_grants(tmp_path: Path) -> None:
    rec = _rec(tmp_path, ["messages.read"])
    ep = EventPolicy()
    p1, p2 = load_policy_text(PERMIT), load_policy_text(PERMIT + FORBID[FORBID.index("[[rule"):])
    assert ep.decide(p1, rec, "message.sent")[0].allowed
    assert ep.decide(p1, rec, "message.sent") == (ep.decide(p1, rec, "message.sent")[0], False)
    d, fresh = ep.decide(p2, rec, "message.sent")
    assert fresh and not d.allowed and d.rules == ("no-list",)
    d, fresh = ep.decide(p1, replace(rec, grants=frozenset()), "message.sent")
    assert fresh and not d.allowed and d.code == "permission_denied"  # narrowed grants


class _Old:
    def __init__(self) -> None:
        self.dropped: list[tuple[str, str]] = []

    def drop(self, job: Any, why: str, /) -> None:
        self.dropped.append((job.name, why))


class _Job:
    def __init__(self, name: str) -> None:
        self.name = name
        self.payload: dict[str, Any] = {}


def test_a_restart_carries_only_the_events_the_policy_still_permits(tmp_path: Path) -> None:
    rec = _rec(tmp_path, ["messages.read"])
    ep, old = EventPolicy(), _Old()
    jobs = [_Job("message.sent"), _Job("enable")]
    forbid = load_policy_text(PERMIT + FORBID[FORBID.index("[[rule"):])
    carried = ep.carry(forbid, rec, (old, jobs))
    assert carried is not None and [j.name for j in carried[1]] == ["enable"]  # a hook: kept
    assert old.dropped == [("message.sent", "policy")]
    carried = ep.carry(load_policy_text(PERMIT), rec, (old, jobs))
    assert carried is not None and len(carried[1]) == 2
    assert ep.carry(forbid, rec, None) is None
