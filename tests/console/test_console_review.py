"""What the operator reviews is what the console applies (DESIGN rule 7): approving or rejecting
an update names the package that was on the page, and a different one parked since is refused
with nothing changed."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from apphelp import write_app
from conhelp import PASSWORD, SRC, Served
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.cli.main import root


def _client(s: Served) -> httpx.Client:
    c = httpx.Client(base_url=s.url, timeout=10)
    r = c.post("/console/login", data={"username": "operator", "password": PASSWORD},
               headers={"Origin": s.url})
    assert r.status_code in (200, 303), r.text
    return c


def _field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert m is not None, name
    return m.group(1)


def _park(s: Served, tmp_path: Path, perms: list[str], events: list[str], version: str) -> None:
    """A version of agent-sync that asks for more, parked through the real CLI."""
    folder = write_app(tmp_path / f"v{version}", "agent-sync", perms, events, SRC)
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', f'version = "{version}"')
    (folder / "app.toml").write_text(toml)
    r = CliRunner().invoke(root, ["--home", str(s.home.root), "app", "update", "agent-sync",
                                  str(folder), "--allow-unsigned"])
    assert r.exit_code == 1, r.output  # parked: it waits for consent


def _agent_sync(s: Served) -> Any:
    with InstallStore(s.home.host_db) as store:
        return store.by_app("agent-sync")


def test_approve_or_reject_refuses_an_update_other_than_the_one_reviewed(
        served: Served, tmp_path: Path) -> None:
    _park(served, tmp_path, ["livechat.read", "users.read"], [], "1.1.0")
    c = _client(served)
    iid = _agent_sync(served).install_id
    page = c.get(f"/console/updates/{iid}").text
    assert "to 1.1.0?" in page and "events added" not in page
    reviewed = _agent_sync(served).pending.package_hash
    assert re.findall(r'name="package" value="([^"]+)"', page) == [reviewed, reviewed]
    # someone else parks a different version between the operator's reading and clicking
    _park(served, tmp_path, ["livechat.read", "users.read"],
          ["livechat.room_started", "livechat.guest_saved"], "9.9.9")
    for action, extra in (("approve", {"grant": ["users.read"]}), ("reject", {})):
        r = c.post(f"/console/updates/{iid}/{action}",
                   data={"csrf": _field(page, "csrf"), "package": reviewed, **extra},
                   headers={"Origin": served.url})
        assert r.status_code == 409 and "review it again" in r.text, (action, r.text)
        rec = _agent_sync(served)
        assert rec.version == "1.0.0" and not rec.manifest.events
        assert rec.pending is not None and rec.pending.version == "9.9.9"
    # no package named at all: refused the same way
    r = c.post(f"/console/updates/{iid}/approve", data={"csrf": _field(page, "csrf")},
               headers={"Origin": served.url})
    assert r.status_code == 409 and _agent_sync(served).version == "1.0.0"
    # reviewed again, the new version is what the operator approves
    page = c.get(f"/console/updates/{iid}").text
    assert "to 9.9.9?" in page and "events added" in page
    r = c.post(f"/console/updates/{iid}/approve",
               data={"csrf": _field(page, "csrf"), "package": _field(page, "package"),
                     "grant": ["users.read"]}, headers={"Origin": served.url})
    assert r.status_code == 303, r.text
    rec = _agent_sync(served)
    assert rec.version == "9.9.9" and rec.grants == frozenset({"livechat.read", "users.read"})
