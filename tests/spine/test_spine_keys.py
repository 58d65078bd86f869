"""Host key rotation without downtime: a rotated key keeps verifying what it signed until it is
retired; retiring is refused while an install's consent depends on the key."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from apphelp import install, write_app
from typer.testing import CliRunner

from host.cli.main import root
from host.clock import ManualClock
from host.home import Home
from host.keys import tokens
from host.keys.keyring import Keyring


def _cli(home: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(root, ["--home", str(home), *args])
    return r.exit_code, r.stdout


def test_rotation_keeps_old_tokens_valid_until_retired(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    clock = ManualClock()
    ring = Keyring.open(home.keys_dir)
    old_token = tokens.issue(ring, clock, app_id="a", install_id="i", session_id="s",
                             generation=1, epoch=0, permissions=frozenset(), policy_hash="p")
    code, out = _cli(home.root, "keys", "host-rotate", "--json")
    assert code == 0
    old, new = json.loads(out)["previous"], json.loads(out)["current"]
    ring = Keyring.open(home.keys_dir)
    assert ring.current == new != old
    assert tokens.verify(old_token, ring, clock, session_id="s").kid == old
    code, _ = _cli(home.root, "keys", "host-retire", old)
    assert code == 0
    with pytest.raises(tokens.TokenError):
        tokens.verify(old_token, Keyring.open(home.keys_dir), clock, session_id="s")


def test_retire_refused_while_a_consent_depends_on_the_key(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "keyed", ["livechat.read"], [], '''
from stockade import App

class TestApp(App):
    pass
'''))
    old = Keyring.open(home.keys_dir).current
    assert _cli(home.root, "keys", "host-rotate")[0] == 0
    code, _ = _cli(home.root, "keys", "host-retire", old)
    assert code == 1
    assert old not in Keyring.open(home.keys_dir).retired


def test_minted_claims_are_what_the_token_carries(tmp_path: Path) -> None:
    """The host records a token's claims from `mint` without verifying its own signature: they
    must be exactly what any verifier reads from the token."""
    ring = Keyring.open(tmp_path / "keys")
    clock = ManualClock()
    token, claims = tokens.mint(ring, clock, app_id="a", install_id="i", session_id="s",
                                generation=3, epoch=2, permissions=frozenset({"x", "w"}),
                                policy_hash="p")
    assert tokens.verify(token, ring, clock, session_id="s") == claims
