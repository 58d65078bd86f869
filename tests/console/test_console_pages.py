"""The console's read-only pages over real HTTP: quota usage against the limits with its chart
and when the next unit frees, the seat count against the ceiling, and the policy revision, its
findings and the host keys — each read from the same stores the host and the CLI use."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from apphelp import write_app
from conhelp import PASSWORD, QUOTA_POLICY, Served, signed_in
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from host.apps.installs import InstallStore
from host.apps.packages import build_zip, package_folder, package_from_files, package_from_zip
from host.apps.publisher import TrustStore, public_key_line, sign_package
from host.clock import SystemClock
from host.ledger.audit import open_readonly
from host.ledger.quota import Charge, QuotaStore
from policies.loader import load_policy


def test_quota_usage_chart_and_seats(served: Served) -> None:
    (served.home.policies_dir / "console.toml").write_text(QUOTA_POLICY.replace("LIMIT", "3"))
    store = InstallStore(served.home.host_db)
    rec = store.by_app("agent-sync")
    store.close()
    assert rec is not None
    quotas = QuotaStore(served.home.host_db, SystemClock())
    key = f"install:{rec.install_id}:users.create#sync-creates"
    for i in range(3):  # the quota full: three units taken through the ledger's own primitive
        quotas.reserve([Charge(key, 3, 600)], f"op_{i}")
    quotas.close()
    page = signed_in(served).get("/console/quotas").text
    row = re.search(r'<tr id="quota-agent-sync-sync-creates">(.*?)</tr>', page, re.S)
    assert row is not None, page
    assert "3 / 3" in row.group(1) and "a unit is free now" not in row.group(1)
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([0-9.]+)"', row.group(1))]
    assert len(heights) == 12 and heights[-1] > 0 and sum(heights) > 0  # the newest slice
    assert "of a\nworkspace ceiling of 5" in page or "workspace ceiling of 5" in page


def test_policy_revision_findings_and_keys(served: Served) -> None:
    c = signed_in(served)
    page = c.get("/console/policy").text
    revision = load_policy(served.home.policies_dir).revision
    assert revision in page
    (served.home.policies_dir / "wide.toml").write_text(
        'schema = 1\nname = "wide"\n[[rule]]\nid = "all"\neffect = "permit"\napps = ["*"]\n'
        'actions = ["*"]\n')
    page = c.get("/console/policy").text
    assert "does not load" in page and "STK015" in page
    assert re.search(r'<table id="keys">.*current', page, re.S)


def _package(tmp_path: Path, app_id: str, perms: list[str], roles: str = "") -> bytes:
    folder = write_app(tmp_path / "pkgs", app_id, perms, [],
                       "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    if roles:
        toml = (folder / "app.toml").read_text()
        (folder / "app.toml").write_text(toml.replace(
            'name = "users.create"', f'name = "users.create"\nroles = {roles}'))
    _name, data = package_folder(folder)
    return data


def _upload(c: httpx.Client, s: Served, data: bytes) -> tuple[int, str]:
    page = c.get("/console/install").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = c.post("/console/install", data={"csrf": csrf}, files={"package": ("a.zip", data)},
               headers={"Origin": s.url})
    return r.status_code, r.text


def _confirm(c: httpx.Client, s: Served, page: str, grants: list[str],
             **extra: str) -> httpx.Response:
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    token = re.search(r'name="upload" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    return c.post("/console/install/confirm",
                  data={"csrf": csrf, "upload": token, "grant": grants, **extra},
                  headers={"Origin": s.url})


def test_install_with_consent_grants_exactly_what_is_ticked(served: Served, tmp_path: Path) -> None:
    c = signed_in(served)
    status, page = _upload(c, served, _package(tmp_path, "crm-sync",
                                               ["livechat.read", "messages.read"]))
    assert status == 200 and "UNSIGNED" in page and 'id="perm-messages.read"' in page
    # unsigned and the box not ticked: refused, nothing installed
    r = _confirm(c, served, page, ["livechat.read"])
    assert r.status_code == 400 and "unsigned" in r.text
    status, page = _upload(c, served, _package(tmp_path, "crm-sync",
                                               ["livechat.read", "messages.read"]))
    r = _confirm(c, served, page, ["livechat.read", "users.create"], allow_unsigned="yes")
    assert r.status_code == 400 and "not asked for" in r.text  # more than the package asks
    status, page = _upload(c, served, _package(tmp_path, "crm-sync",
                                               ["livechat.read", "messages.read"]))
    r = _confirm(c, served, page, ["livechat.read"], allow_unsigned="yes")
    assert r.status_code in (200, 303), r.text
    store = InstallStore(served.home.host_db)
    rec = store.by_app("crm-sync")
    store.close()
    assert rec is not None and rec.grants == frozenset({"livechat.read"})
    log = open_readonly(served.home.host_db, SystemClock())
    try:
        installs = [e.body for e in log.tail(200) if e.body.get("kind") == "operator.install"]
    finally:
        log.close()
    assert installs and installs[-1]["actor"].startswith("console:operator")


def test_an_admin_class_role_or_a_forged_upload_installs_nothing(served: Served,
                                                                 tmp_path: Path) -> None:
    c = signed_in(served)
    status, page = _upload(c, served, _package(tmp_path, "grabby", ["users.create"],
                                               roles='["admin"]'))
    assert status == 200 and "Refused:" in page
    r = _confirm(c, served, page, ["users.create"], allow_unsigned="yes")
    assert r.status_code == 400 and "cannot be consented to" in r.text
    # an upload without the session's CSRF token
    r = c.post("/console/install", data={"csrf": "forged"},
               files={"package": ("a.zip", _package(tmp_path, "other", ["livechat.read"]))},
               headers={"Origin": served.url})
    assert r.status_code == 403
    store = InstallStore(served.home.host_db)
    assert store.by_app("grabby") is None and store.by_app("other") is None
    store.close()


def _park_update(s: Served, tmp_path: Path, perms: list[str], version: str) -> None:
    """A wider version of agent-sync through the real CLI: it waits for consent."""
    from typer.testing import CliRunner

    from host.cli.main import root

    folder = write_app(tmp_path / f"v{version}", "agent-sync", perms, [],
                       "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', f'version = "{version}"')
    (folder / "app.toml").write_text(toml)
    r = CliRunner().invoke(root, ["--home", str(s.home.root), "app", "update", "agent-sync",
                                  str(folder), "--allow-unsigned"])
    assert r.exit_code == 1, r.output  # parked: it asks for more


def _agent_sync(s: Served) -> Any:
    store = InstallStore(s.home.host_db)
    try:
        return store.by_app("agent-sync")
    finally:
        store.close()


def test_a_pending_update_is_approved_with_the_ticked_grants(served: Served,
                                                            tmp_path: Path) -> None:
    _park_update(served, tmp_path, ["livechat.read", "messages.read", "users.read"], "1.1.0")
    c = signed_in(served)
    queue = c.get("/console/updates").text
    assert 'id="pending-agent-sync"' in queue and "1.1.0" in queue
    iid = _agent_sync(served).install_id
    page = c.get(f"/console/updates/{iid}").text
    assert "permissions added" in page and "messages.read, users.read" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    pkg = re.search(r'name="package" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    shown = re.search(r'name="publisher" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    signed = {"package": pkg, "publisher": shown, "allow_unsigned": "yes"}  # the fixture's
    # a grant the update does not ask for is refused; then only messages.read is ticked
    r = c.post(f"/console/updates/{iid}/approve",
               data={"csrf": csrf, **signed, "grant": ["http"]},
               headers={"Origin": served.url})
    assert r.status_code == 400 and "not asked for" in r.text
    r = c.post(f"/console/updates/{iid}/approve",
               data={"csrf": csrf, **signed, "grant": ["messages.read"]},
               headers={"Origin": served.url})
    assert r.status_code in (200, 303), r.text
    rec = _agent_sync(served)
    assert rec.version == "1.1.0" and rec.pending is None
    assert rec.grants == frozenset({"livechat.read", "messages.read"})  # users.read not ticked


def test_a_pending_update_is_rejected(served: Served, tmp_path: Path) -> None:
    _park_update(served, tmp_path, ["livechat.read", "users.read"], "2.0.0")
    c = signed_in(served)
    iid = _agent_sync(served).install_id
    page = c.get(f"/console/updates/{iid}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    pkg = re.search(r'name="package" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert c.post(f"/console/updates/{iid}/reject", data={"csrf": "forged", "package": pkg},
                  headers={"Origin": served.url}).status_code == 403
    assert _agent_sync(served).pending is not None
    r = c.post(f"/console/updates/{iid}/reject", data={"csrf": csrf, "package": pkg},
               headers={"Origin": served.url})
    assert r.status_code in (200, 303)
    rec = _agent_sync(served)
    assert rec.pending is None and rec.version == "1.0.0"


def test_audit_search_by_rule_and_time_and_a_records_detail(served: Served) -> None:
    c = signed_in(served)
    page = c.get("/console/audit", params={"since": "2000-01-01T00:00"}).text
    seqs = re.findall(r'href="/console/audit/(\d+)"', page)
    assert seqs  # the installs' records
    assert 'href="/console/audit/' not in c.get("/console/audit",
                                                params={"since": "2999-01-01"}).text
    assert 'href="/console/audit/' not in c.get("/console/audit",
                                                params={"rule": "no-such-rule"}).text
    assert c.get("/console/audit", params={"since": "yesterday"}).status_code == 400
    details = [c.get(f"/console/audit/{seq}").text for seq in seqs]
    assert all("Previous hash" in d for d in details)
    assert any("operator.install" in d for d in details)
    assert c.get("/console/audit/999999").status_code == 404


def test_the_policy_page_names_the_revision_the_serving_host_enforces(tmp_path: Path) -> None:
    """With a host's revision handed in, as `stockade serve` does."""
    from starlette.routing import Mount

    from host.bench.rest_http import serving
    from host.clock import SystemClock
    from host.console.app import create_console
    from host.home import Home
    from host.server import SYSTEM, EmbeddedServer
    from host.server.auth import set_password

    home = Home(tmp_path / "home").ensure()
    server = EmbeddedServer(home.server_db, SystemClock())
    op = server.users_create(SYSTEM, "operator", "Op", "user", roles=["admin"])
    set_password(server.db, op["id"], PASSWORD)
    console = Mount("/console", create_console(home, server, lambda: "sha256:enforced-revision"))
    with serving(server, mounts=[console]) as (base, _srv, _uv), \
            httpx.Client(base_url=base, timeout=10) as c:
        c.post("/console/login", data={"username": "operator", "password": PASSWORD},
               headers={"Origin": base})
        page = c.get("/console/policy").text
    server.close()
    assert "decides with revision" in page and "sha256:enforced-revision" in page


def _upload_update(c: httpx.Client, s: Served, iid: str, data: bytes,
                   **extra: str) -> httpx.Response:
    page = c.get("/console/updates").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    return c.post("/console/updates", data={"csrf": csrf, "install_id": iid, **extra},
                  files={"package": ("u.zip", data)}, headers={"Origin": s.url})


def _versioned(tmp_path: Path, app_id: str, perms: list[str], version: str) -> bytes:
    folder = write_app(tmp_path / f"{app_id}-{version}", app_id, perms, [],
                       "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', f'version = "{version}"')
    (folder / "app.toml").write_text(toml)
    return package_folder(folder)[1]


def test_an_uploaded_update_applies_or_waits_as_the_cli_decides(served: Served,
                                                                 tmp_path: Path) -> None:
    c = signed_in(served)
    iid = _agent_sync(served).install_id
    same = _versioned(tmp_path, "agent-sync", ["livechat.read"], "1.0.1")
    assert _upload_update(c, served, iid, same).status_code == 400  # unsigned, box not ticked
    r = _upload_update(c, served, iid, _versioned(tmp_path, "other-app", ["livechat.read"],
                                                  "1.0.1"), allow_unsigned="yes")
    assert r.status_code == 400 and "the package is app" in r.text
    r = _upload_update(c, served, iid, same, allow_unsigned="yes")
    assert r.status_code in (200, 303) and _agent_sync(served).version == "1.0.1"  # at once
    wider = _versioned(tmp_path, "agent-sync", ["livechat.read", "users.read"], "1.1.0")
    r = _upload_update(c, served, iid, wider, allow_unsigned="yes")
    assert r.status_code in (200, 303)
    rec = _agent_sync(served)
    assert rec.version == "1.0.1" and rec.pending is not None and rec.pending.version == "1.1.0"
    # One that applies at once replaces the waiting one: the page says so, as `app update` does
    r = _upload_update(c, served, iid, _versioned(tmp_path, "agent-sync", ["livechat.read"],
                                                  "1.0.2"), allow_unsigned="yes")
    rec = _agent_sync(served)
    assert rec.version == "1.0.2" and rec.pending is None
    said = re.search(r'<p class="warn" id="dropped">(.*?)</p>', r.text, re.S)
    assert r.status_code == 200 and said is not None
    assert "agent-sync" in said.group(1) and "1.1.0" in said.group(1)


SETTINGS = '''
[[setting]]
key = "crm_token"
type = "secret"
label = "CRM token"

[[setting]]
key = "batch"
type = "int"
label = "Batch size"
required = true
default = 10
'''


def test_settings_typed_required_and_secret_never_shown(served: Served, tmp_path: Path) -> None:
    from apphelp import install

    rec = install(served.home, write_app(tmp_path / "set", "crm-sync", ["livechat.read"], [],
                                         "from stockade import App\n\nclass TestApp(App):\n"
                                         "    pass\n", settings=SETTINGS))
    c = signed_in(served)
    url = f"/console/apps/{rec.install_id}/settings"
    page = c.get(url).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    secret = "s3cr3t-crm-token-value"

    def post(**fields: str) -> httpx.Response:
        return c.post(url, data={"csrf": csrf, **{f"setting-{k}": v for k, v in fields.items()}},
                      headers={"Origin": served.url})

    assert post(batch="many").status_code == 400  # typed by the manifest
    assert post(batch="").status_code == 400  # required
    assert post(batch="7", crm_token=secret).status_code in (200, 303)
    assert post(batch="8", crm_token="").status_code in (200, 303)  # empty keeps the secret
    store = InstallStore(served.home.host_db)
    now = store.get(rec.install_id)
    store.close()
    assert now is not None and now.settings["batch"] == 8 and now.settings["crm_token"] == secret
    assert secret not in c.get(url).text
    log = open_readonly(served.home.host_db, SystemClock())
    try:
        bodies = [e.body for e in log.tail(100) if e.body.get("kind") == "operator.settings"]
    finally:
        log.close()
    assert [b["setting_keys"] for b in bodies] == [["batch", "crm_token"], ["batch"]]
    assert secret not in str(bodies) and all(b["actor"].startswith("console:") for b in bodies)


def test_uninstall_says_what_it_deletes_and_needs_the_operators_choices(served: Served) -> None:
    c = signed_in(served)
    iid = _agent_sync(served).install_id
    page = c.get(f"/console/apps/{iid}/uninstall").text
    assert "stored item(s)" in page and "livechat agent(s)" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    url = f"/console/apps/{iid}/uninstall"
    # no confirmation, or no choice about the agents: nothing happens
    for data in ({"users": "keep", "agents": "remove"}, {"users": "keep", "confirm": "yes"}):
        assert c.post(url, data={"csrf": csrf, **data},
                      headers={"Origin": served.url}).status_code == 400
    assert c.post(url, data={"csrf": "forged", "users": "keep", "agents": "remove",
                             "confirm": "yes"}, headers={"Origin": served.url}).status_code == 403
    assert _agent_sync(served) is not None
    r = c.post(url, data={"csrf": csrf, "users": "keep", "agents": "remove", "confirm": "yes"},
               headers={"Origin": served.url})
    assert r.status_code in (200, 303)
    assert _agent_sync(served) is None
    log = open_readonly(served.home.host_db, SystemClock())
    try:
        rec = [e.body for e in log.tail(50) if e.body.get("kind") == "operator.uninstall"][-1]
    finally:
        log.close()
    assert rec["actor"].startswith("console:operator") and "agents: remove" in rec["detail"]


def test_a_publisher_untrusted_during_the_review_no_longer_vouches_at_confirm(
        served: Served, tmp_path: Path) -> None:
    """The signature was checked at the upload only: a publisher untrusted (`keys untrust`, its
    key leaked) while the consent page was open still installed as "trusted", without the
    unsigned tick. Now the confirm reads the trust store again and asks for a new review."""
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    trust = TrustStore(served.home.trust_dir)
    pkg = package_from_zip(_package(tmp_path, "crm-sync", ["livechat.read"]), "x")
    signed = build_zip(package_from_files(dict(pkg.files), sign_package(pkg, key)))
    c = signed_in(served)
    for extra in ({}, {"allow_unsigned": "yes"}):  # not even with the tick: review it again
        trust.add("acme", public_key_line(raw))
        status, page = _upload(c, served, signed)
        assert status == 200 and "trusted publisher" in page
        assert trust.remove("acme")  # meanwhile
        r = _confirm(c, served, page, ["livechat.read"], **extra)
        assert r.status_code == 409 and "reviewed" in r.text, (r.status_code, re.findall(
            r'<p class="error"[^>]*>.*?</p>', r.text))
    with InstallStore(served.home.host_db) as store:
        assert store.by_app("crm-sync") is None


def test_settings_saved_for_an_app_uninstalled_meanwhile_is_refused_not_an_error(
        served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store refuses a settings change for an install removed after the page read it
    (`InstallChanged`); the console passed that on as a 500."""
    from apphelp import install

    from host.apps.installs import InstallStore as Store

    rec = install(served.home, write_app(tmp_path / "set", "crm-sync", ["livechat.read"], [],
                                         "from stockade import App\n\nclass TestApp(App):\n"
                                         "    pass\n", settings=SETTINGS))
    c = signed_in(served)
    url = f"/console/apps/{rec.install_id}/settings"
    csrf = re.search(r'name="csrf" value="([^"]+)"',  # type: ignore[union-attr]
                     c.get(url).text).group(1)
    real = Store.set_settings

    def uninstalled_first(self: Store, install_id: str, *args: Any) -> None:
        self.remove(install_id)  # another operator's uninstall, between the read and the write
        real(self, install_id, *args)

    monkeypatch.setattr(Store, "set_settings", uninstalled_first)
    r = c.post(url, data={"csrf": csrf, "setting-batch": "9"}, headers={"Origin": served.url})
    assert r.status_code in (400, 404), r.status_code


def test_the_consent_page_names_the_events_the_policy_keeps_from_the_app(
        served: Served, tmp_path: Path) -> None:
    """Events follow the policy's reads (`host/gate/eventpolicy.py`): the CLI's disclosure said
    which events an app will not receive; the console's consent page did not."""
    (served.home.policies_dir / "no-visitors.toml").write_text(
        'schema = 1\nname = "no-visitors"\n[[rule]]\nid = "no-visitors"\neffect = "forbid"\n'
        'apps = ["crm-sync"]\nactions = ["livechat.get_visitor"]\n')
    folder = write_app(tmp_path / "ev", "crm-sync", ["livechat.read"],
                       ["livechat.room_started"],
                       "from stockade import App\n\nclass TestApp(App):\n"
                       "    def on_livechat_room_started(self, ctx, event):\n        pass\n")
    _name, data = package_folder(folder)
    status, page = _upload(signed_in(served), served, data)
    assert status == 200, page[-500:]
    refused = re.search(r'<ul id="events-refused">(.*?)</ul>', page, re.S)
    assert refused is not None and "livechat.room_started" in refused.group(1)
    assert "livechat.get_visitor" in refused.group(1)
