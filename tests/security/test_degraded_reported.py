"""`--degraded` runs an app whose child is missing a confinement layer: never silently.

`serve --degraded` is also the documented way to restart after a broken audit chain, so an
operator can pass it for that reason alone and, on a machine that has lost a layer (a kernel
without Landlock, a host that can no longer give a uid), run every app with that wall gone.
The host used to say nothing: the handshake let the child through, the log and the audit
chain stayed quiet. Now each such start names the missing layers in the host's log and in an
audit record for the app (`supervisor` / `confinement_degraded`).

The child here is a real process (`sechelp.start_fake_child`) that speaks the protocol and
reports the layers it is told to, standing in for a child on a machine that lacks them.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app
from sechelp import start_fake_child

import host.runtime as runtime
from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import open_readonly
from host.runtime import Host, HostConfig
from host.supervise.child import Child, ChildLimits

SRC = ("from stockade import App\n\nclass TestApp(App):\n"
       "    def on_livechat_room_started(self, ctx, event):\n        return None\n")
MISSING = {"seccomp": False, "landlock": False}


def test_a_degraded_handshake_names_the_missing_layers_in_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    child = start_fake_child([["hello", MISSING], ["sleep", 30]])
    try:
        with caplog.at_level(logging.WARNING):
            layers = child.handshake("tok", lambda _t: None, degraded=True)
        assert not layers.seccomp  # let through: that is what --degraded asks for
        warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("seccomp, landlock" in m and "--degraded" in m for m in warned), warned
        assert child.missing_layers == ("seccomp", "landlock")
    finally:
        child.kill("test over")
        child.close()


def test_a_complete_handshake_reports_nothing_missing(
        caplog: pytest.LogCaptureFixture) -> None:
    child = start_fake_child([["hello"], ["sleep", 30]])
    try:
        with caplog.at_level(logging.WARNING):
            child.handshake("tok", lambda _t: None, degraded=True)
        assert child.missing_layers == ()
        assert not [r for r in caplog.records if "confinement" in r.getMessage()]
    finally:
        child.kill("test over")
        child.close()


class _FakeSpawner:
    """Stands in for the host's `Spawner`: every child reports seccomp and Landlock missing."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        self.children: list[Child] = []
        self.zygote = None  # no zygote: every child is spawned here

    def start(self, limits: ChildLimits) -> Child:
        child = start_fake_child([
            ["hello", MISSING], ["recv"],
            ["send", {"t": "loaded", "ok": True, "handlers": ["on_livechat_room_started"]}],
            ["sleep", 60]])
        self.children.append(child)
        return child

    def started(self) -> None:
        pass

    def close(self) -> None:
        for child in self.children:
            child.kill("host stopped")


def test_the_host_audits_an_app_started_with_layers_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "red", ["livechat.read"],
                            ["livechat.room_started"], SRC))
    monkeypatch.setattr(runtime, "Spawner", _FakeSpawner)
    with Host(home, config=HostConfig(watch=False, prefork=0, degraded=True)) as host:
        runner = next(iter(host.runners.values()))
        assert runner.child is not None  # the app runs: --degraded let it
    log = open_readonly(home.host_db, SystemClock())
    try:
        records = [e.body for e in log.tail(1000)]
    finally:
        log.close()
    degraded = [r for r in records if r.get("event") == "confinement_degraded"]
    assert len(degraded) == 1, records
    assert degraded[0]["kind"] == "supervisor" and degraded[0]["app_id"] == "red"
    assert "seccomp, landlock" in degraded[0]["detail"]
