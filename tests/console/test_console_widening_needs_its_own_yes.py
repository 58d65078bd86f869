"""Approving an update in the console needs its own yes for what no box covers, as `app
consent` does (`_confirm_widening`): wider roles, the app user made an agent, new events, new
secrets, a downgrade. The review page asked only "Approve with the ticked grants", so an
operator who ticked none of the new permissions (declining them all) still approved the version
whose roles.assign may now give any role: the CLI's own finding, still open in the console."""
from __future__ import annotations

import re
from pathlib import Path

from apphelp import install, write_app
from conhelp import SRC, Served, signed_in
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.cli.main import root


def _field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert m is not None, name
    return m.group(1)


def _hr_bot(tmp_path: Path, version: str, perms: list[str], roles: str) -> Path:
    folder = write_app(tmp_path / version, "hr-bot", perms, [], SRC)
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', f'version = "{version}"')
    (folder / "app.toml").write_text(toml.replace('name = "roles.assign"',
                                                  f'name = "roles.assign"{roles}'))
    return folder


def test_approving_a_wider_role_list_needs_its_own_yes(served: Served, tmp_path: Path) -> None:
    rec = install(served.home, _hr_bot(tmp_path, "1.0.0", ["roles.assign"],
                                       '\nroles = ["livechat-agent"]'))
    # 1.1.0 drops the role list (any role but the admin class) and asks for users.read
    r = CliRunner().invoke(root, ["--home", str(served.home.root), "app", "update", "hr-bot",
                                  str(_hr_bot(tmp_path, "1.1.0", ["roles.assign", "users.read"],
                                              "")), "--allow-unsigned"])
    assert r.exit_code == 1, r.output  # parked
    c = signed_in(served)
    page = c.get(f"/console/updates/{rec.install_id}").text
    assert "roles widened on roles.assign" in page and 'id="grant-users.read"' in page
    form = {"csrf": _field(page, "csrf"), "package": _field(page, "package"),
            "publisher": _field(page, "publisher"), "allow_unsigned": "yes"}
    # users.read declined, nothing else said: the wider roles are not approved either
    r = c.post(f"/console/updates/{rec.install_id}/approve", data=form,
               headers={"Origin": served.url})
    assert r.status_code == 400 and "no box covers" in r.text, r.text
    with InstallStore(served.home.host_db) as store:
        now = store.get(rec.install_id)
    assert now is not None and now.version == "1.0.0" and now.pending is not None
    assert now.manifest.declared_roles("roles.assign") == frozenset({"livechat-agent"})
    assert 'id="widening"' in page, "no box of its own for what no permission box covers"
    r = c.post(f"/console/updates/{rec.install_id}/approve", data={**form, "widening": "yes"},
               headers={"Origin": served.url})
    assert r.status_code == 303, r.text
    with InstallStore(served.home.host_db) as store:
        now = store.get(rec.install_id)
    assert now is not None and now.version == "1.1.0"
    assert now.grants == frozenset({"roles.assign"})  # users.read was not ticked
