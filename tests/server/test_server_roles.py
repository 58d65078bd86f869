from __future__ import annotations

import pytest
from srvhelp import op

from host.server import SYSTEM, Caller, EmbeddedServer, Forbidden, InvalidArgument, NotFound

PRIVILEGED = {"admin", "owner", "moderator", "livechat-manager", "livechat-monitor"}
ORDINARY = {"user", "bot", "livechat-agent", "guest", "app"}


def test_seeded_roles_and_privileged_set(server: EmbeddedServer) -> None:
    listed = {r["name"]: r["privileged"] for r in server.roles_list()}
    assert {n for n, p in listed.items() if p} == PRIVILEGED
    assert {n for n, p in listed.items() if not p} == ORDINARY
    for r in PRIVILEGED:
        assert server.is_privileged(r)
    for r in ORDINARY | {"no-such-role"}:
        assert not server.is_privileged(r)


def test_assign_and_remove(server: EmbeddedServer, app: Caller) -> None:
    u = server.users_create(app, "gina", "G", "user", op_id=op())
    u = server.roles_assign(app, u["id"], "livechat-agent", op_id=op())
    assert u["roles"] == ["livechat-agent", "user"]
    assert server.roles_assign(app, u["id"], "livechat-agent", op_id=op())["roles"] == u["roles"]
    u = server.roles_remove(app, u["id"], "user", op_id=op())
    assert u["roles"] == ["livechat-agent"]
    assert server.roles_remove(app, u["id"], "user", op_id=op())["roles"] == ["livechat-agent"]


def test_app_never_touches_privileged_roles(server: EmbeddedServer, app: Caller) -> None:
    u = server.users_create(app, "hank", "H", "user", op_id=op())
    for role in sorted(PRIVILEGED):
        with pytest.raises(Forbidden):
            server.roles_assign(app, u["id"], role, op_id=op())
    admin = server.users_create(SYSTEM, "boss", "B", "user", roles=["admin"])
    with pytest.raises(Forbidden):
        server.roles_remove(app, admin["id"], "admin", op_id=op())
    assert server.users_get(app, admin["id"])["roles"] == ["admin"]
    # The operator may.
    assert "admin" in server.roles_assign(SYSTEM, u["id"], "admin")["roles"]


def test_role_errors(server: EmbeddedServer, app: Caller) -> None:
    u = server.users_create(app, "ivan", "I", "user", op_id=op())
    with pytest.raises(NotFound, match="no role"):
        server.roles_assign(app, u["id"], "wizard", op_id=op())
    with pytest.raises(NotFound, match="no user"):
        server.roles_assign(app, "missing", "bot", op_id=op())
    with pytest.raises(InvalidArgument):
        server.roles_assign(app, u["id"], "Not A Role", op_id=op())
