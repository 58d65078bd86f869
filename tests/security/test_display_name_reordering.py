"""A name the chat server displays (a user an app creates, an agent's, a message's alias) holds
no character that reorders or breaks how it reads there, outside the host's inert rendering:
an app holding `users.create` made a user named "\\u202enimda", which the server's UI shows as
"admin", and C1 controls (U+0085, a line break) passed a check of code points below 32."""
from __future__ import annotations

from pathlib import Path

import pytest
from gatehelp import build_rig, install_fuzz_app

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from policies.argrules import ArgumentProblem, name


@pytest.mark.parametrize("shown", [
    "\u202enimda",  # right-to-left override: displays as "admin"
    "Support\u2066 Team\u2069",  # an isolate
    "Ana\u2028Admin",  # a line separator: a second line in a list of names
    "Ana\x85Admin",  # NEL, a C1 control: a line break
    "Ana\x7f",
])
def test_an_app_cannot_create_a_user_whose_name_reads_as_another(
        tmp_path: Path, shown: str) -> None:
    home = Home(tmp_path / "home").ensure()
    install_fuzz_app(home)
    rig = build_rig(home, SystemClock())
    with pytest.raises(GateError) as refused:
        rig.gate.handle(rig.session, "users.create",
                        {"username": "spoof-1", "name": shown, "type": "bot", "roles": ["bot"]})
    assert refused.value.code == "invalid_argument", refused.value
    assert rig.server._server.count_users_created_by("fuzzapp") == 0


def test_names_in_any_script_stay_allowed() -> None:
    # The control: right-to-left names need none of these; joiners are letters' business.
    for shown in ("سارا", "שרה", "می\u200cخواهم", "\U0001f469\u200d\U0001f4bb Ana", "Zoë O'Brien"):
        assert name(shown) == shown
    with pytest.raises(ArgumentProblem):
        name("\u202enimda")
