"""Text with a NUL character (U+0000) on a shared PostgreSQL store: PostgreSQL can neither hold
nor compare it, and psycopg refused it as a store error, so an app's lookup by such a name was
the bridge's `internal` ("failed inside the host", its outcome settled as unknown) and a REST
call's 500 with a traceback (`test_server_rest_hostile.py` covers every route). Now it is the
caller's bad input: `host.store.UnstorableText`, a ValueError, which the gate answers
`invalid_argument` and the REST API 400."""
from __future__ import annotations

from pathlib import Path

import pytest
from gatehelp import build_rig, install_fuzz_app

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.migrate import migrate
from host.server.embedded import EmbeddedServer
from host.server.errors import NotFound
from host.server.principals import SYSTEM
from host.store import UnstorableText


def test_a_lookup_by_a_name_with_a_nul_is_bad_input_on_postgresql(
        server: EmbeddedServer) -> None:
    if server.db.shared is None:
        with pytest.raises(NotFound):  # SQLite holds such text: nobody has that name
            server.users_get_by_username(SYSTEM, "a\x00b")
        return
    with pytest.raises(UnstorableText, match="NUL"):
        server.users_get_by_username(SYSTEM, "a\x00b")
    with pytest.raises(UnstorableText):
        server.users_get(SYSTEM, "id\x00")
    # the connection and its transaction are whole afterwards: the statement never ran
    assert server.users_create(SYSTEM, "after", "After", "user")["username"] == "after"


def test_an_apps_lookup_with_a_nul_is_invalid_argument_through_the_gate(
        tmp_path: Path, pg_url: str) -> None:
    migrate(pg_url)
    home = Home(tmp_path / "home").ensure()
    install_fuzz_app(home)
    rig = build_rig(home, SystemClock())
    rig.gate.server = EmbeddedServer(pg_url, SystemClock())  # the workspace on PostgreSQL
    with pytest.raises(GateError) as refused:
        rig.gate.handle(rig.session, "users.get_by_username", {"username": "a\x00b"})
    assert refused.value.code == "invalid_argument" and "NUL" in str(refused.value)
