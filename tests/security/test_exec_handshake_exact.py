"""`sandbox exec` and `doctor` hand a child its token like a serving host does, and accept back
exactly that token (`tokens.same_token`), not any token the ephemeral key signed for the channel:
before, both checked only a signature, so a child handing back another token passed.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from host.clock import SystemClock
from host.keys import tokens
from host.keys.keyring import Keyring
from host.supervise.child import Child
from host.supervise.sandbox_exec import run_snippet


def _presents_another(monkeypatch: pytest.MonkeyPatch, seen: list[bool]) -> None:
    rings: list[Keyring] = []
    real_ring = Keyring.ephemeral

    def ephemeral() -> Keyring:
        rings.append(real_ring())
        return rings[-1]

    real = Child.handshake

    def handshake(self: Child, token: str, verify: Callable[[str], None], **kw: Any) -> Any:
        other = tokens.issue(rings[-1], SystemClock(), app_id="x", install_id="none",
                             session_id=self.session_id, generation=0, epoch=0,
                             permissions=frozenset(), policy_hash="none", ttl_s=60)
        assert other != token
        seen.append(True)  # the control: a good signature for this channel
        return real(self, token, lambda _presented: verify(other), **kw)

    monkeypatch.setattr(Keyring, "ephemeral", staticmethod(ephemeral))
    monkeypatch.setattr(Child, "handshake", handshake)


def test_sandbox_exec_accepts_only_the_token_it_gave(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    _presents_another(monkeypatch, seen)
    with pytest.raises(tokens.TokenError):
        run_snippet("print('ran')", write=lambda _text: None, degraded=True)
    assert seen


def test_doctor_accepts_only_the_token_it_gave(monkeypatch: pytest.MonkeyPatch) -> None:
    from host.doctor import probe_child_layers

    seen: list[bool] = []
    _presents_another(monkeypatch, seen)
    report = probe_child_layers(use_zygote=True)
    assert seen and "error" in report, report
