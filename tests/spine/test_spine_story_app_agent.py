"""Issue 24: the manifest declares "my app user is a livechat agent (in these departments)" on
its livechat.agents permission; the disclosure shows it at install, and the host does it at
enable (only when livechat.agents is granted), so the proxy pattern needs no raw REST calls."""
from __future__ import annotations

from pathlib import Path

from apphelp import install, write_app, write_policy
from rich.console import Console

from host.apps.disclosure import build_disclosure, render_disclosure
from host.apps.packages import read_package
from host.apps.publisher import TrustStore, check_signature
from host.clock import SystemClock
from host.home import Home
from host.runtime import Host
from host.server.embedded import EmbeddedServer
from host.server.principals import SYSTEM

SRC = '''
from stockade import App

class TestApp(App):
    pass
'''

DECLARES = '''
[[permission]]
name = "livechat.agents"
reason = "the bridge's app user serves the rooms it relays"
app_user_agent = true
departments = ["Sales", "Nowhere"]
'''


PERMIT = '''
schema = 1
name = "bridge"
[[rule]]
id = "bridge-agents"
effect = "permit"
apps = ["bridge"]
actions = ["livechat.agents", "livechat.read"]
'''


def _setup(tmp_path: Path, grant: bool, permit: bool = True) -> tuple[Home, EmbeddedServer, str]:
    home = Home(tmp_path / "home").ensure()
    if permit:
        write_policy(home, "bridge", PERMIT)
    folder = write_app(tmp_path / "apps", "bridge", ["livechat.read"], [], SRC, DECLARES)
    install(home, folder, ["livechat.read", "livechat.agents"] if grant else ["livechat.read"])
    server = EmbeddedServer(home.server_db, SystemClock())
    sales = server.add_department("Sales")
    return home, server, sales["id"]


def test_disclosure_shows_the_declaration(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    pkg = read_package(write_app(tmp_path / "apps", "bridge", ["livechat.read"], [], SRC,
                                 DECLARES))
    d = build_disclosure(pkg.manifest, "h", check_signature(pkg, TrustStore(home.trust_dir)),
                         None)
    console = Console(record=True, width=200)
    render_disclosure(d, console)
    text = console.export_text()
    assert "makes its app user an available livechat agent" in text
    assert "Sales, Nowhere" in text


def test_host_makes_the_app_user_an_agent_at_enable(tmp_path: Path) -> None:
    home, server, sales = _setup(tmp_path, grant=True)
    with Host(home):
        pass
    uid = server.users_get_by_username(SYSTEM, "app.bridge")["id"]
    assert server.livechat_get_department(SYSTEM, sales)["agents"] == [uid]
    v = server.save_visitor("visitor-sales-1", name="Vic")
    assert server.visitor_start_room(v["id"], sales)["served_by"] == uid


def test_nothing_happens_without_the_grant(tmp_path: Path) -> None:
    home, server, sales = _setup(tmp_path, grant=False)
    with Host(home):
        pass
    assert server.livechat_get_department(SYSTEM, sales)["agents"] == []
    assert server.list_agents() == []


def test_the_policy_must_permit_what_the_host_does_for_the_app(tmp_path: Path) -> None:
    """Attack (DESIGN rule 11, no side doors): a policy that permits the app no agent actions
    must not be bypassed by declaring app_user_agent; the host does what the app's own
    livechat.add_agent would amount to only when the policy would let the app do it."""
    import json

    from host.ledger.audit import open_readonly

    home, server, sales = _setup(tmp_path, grant=True, permit=False)
    with Host(home):
        pass
    assert server.list_agents() == []
    assert server.livechat_get_department(SYSTEM, sales)["agents"] == []
    conn = open_readonly(home.host_db, SystemClock()).store.conn()
    records = [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit")]
    (rec,) = [r for r in records if r.get("event") == "app_user_agent"]
    assert "policy refuses livechat.add_agent" in rec["detail"]


def test_an_update_that_newly_declares_the_agent_needs_consent(tmp_path: Path) -> None:
    """Attack: an update keeping livechat.agents but adding the declaration would otherwise
    make its app user a routed agent at the next enable with nobody asked."""
    from host.apps.appdiff import diff_manifests

    plain = '\n[[permission]]\nname = "livechat.agents"\nreason = "make our bot an agent"\n'
    old = read_package(write_app(tmp_path / "v1", "bridge", [], [], SRC, plain)).manifest
    new = read_package(write_app(tmp_path / "v2", "bridge", [], [], SRC, DECLARES)).manifest
    diff = diff_manifests(old, new, old_publisher={}, new_publisher={})
    assert diff.needs_consent and diff.agent_widened == {"*", "Sales", "Nowhere"}
