"""The settings and uninstall pages naming things as they are: an optional setting of any type
emptied from the page is unset (as an optional setting no one set: absent from the app's
`ctx.settings`), audited like any change, and an optional select left untouched stays unset;
an integer past the bound says the bound; the uninstall page says when it cannot tell how many
users the app created, and then never proposes deactivating them."""
from __future__ import annotations

import re
from pathlib import Path

import httpx
from apphelp import install, settings_toml, write_app
from conhelp import SRC, Served, signed_in

from host.apps.installs import InstallRecord, InstallStore
from host.clock import SystemClock
from host.ledger.audit import open_readonly
from host.server.remote import config as rc_config

SETTINGS = settings_toml("batch", "verbose", "mode", "api_key")


def _app(served: Served, tmp_path: Path) -> InstallRecord:
    return install(served.home, write_app(tmp_path / "set", "crm-sync", ["livechat.read"], [],
                                          SRC, settings=SETTINGS))


def _form(page: str) -> dict[str, str]:
    """The form as a browser posts it: hidden fields, text fields as filled, each select's
    selected option (else its first), no checkbox ticked."""
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    fields.update({n: "" for n in re.findall(r'<input (?:type="password" )?name="(setting-[^"]+)"',
                                             page)})
    fields.update(dict(re.findall(r'<input name="(setting-[^"]+)" id="[^"]+" value="([^"]*)"',
                                  page)))
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.findall(r'<option value="([^"]*)" selected', body)
        fields[name] = (chosen or re.findall(r'<option value="([^"]*)"', body))[0]
    return fields


def _settings(served: Served, rec: InstallRecord) -> dict[str, object]:
    with InstallStore(served.home.host_store) as store:
        now = store.get(rec.install_id)
    assert now is not None
    return dict(now.settings)


def test_optional_settings_of_every_type_can_be_emptied(served: Served, tmp_path: Path) -> None:
    rec = _app(served, tmp_path)
    with InstallStore(served.home.host_store) as store:
        store.set_settings(rec.install_id, {"batch": 25, "verbose": True, "mode": "safe",
                                            "api_key": "s3cret"},
                           ["batch", "verbose", "mode", "api_key"])
    c = signed_in(served)
    url = f"/console/apps/{rec.install_id}/settings"
    fields = _form(c.get(url).text)
    fields.update({"setting-batch": "", "setting-verbose": "", "setting-mode": "",
                   "clear-api_key": "yes"})
    r = c.post(url, data=fields, headers={"Origin": served.url})
    assert r.status_code in (200, 303), r.text
    assert _settings(served, rec) == {}
    log = open_readonly(served.home.host_db, SystemClock())
    try:
        bodies = [e.body for e in log.tail(50) if e.body.get("kind") == "operator.settings"]
    finally:
        log.close()
    assert bodies[-1]["setting_keys"] == ["api_key", "batch", "mode", "verbose"]
    assert bodies[-1]["actor"].startswith("console:")


def test_an_unset_optional_select_saved_untouched_stays_unset(served: Served,
                                                             tmp_path: Path) -> None:
    """The select had only the options: a browser posts the first, so saving the page for any
    other change set an optional select no one chose."""
    rec = _app(served, tmp_path)
    c = signed_in(served)
    url = f"/console/apps/{rec.install_id}/settings"
    fields = _form(c.get(url).text)
    fields["setting-batch"] = "10"
    r = c.post(url, data=fields, headers={"Origin": served.url})
    assert r.status_code in (200, 303), r.text
    assert _settings(served, rec) == {"batch": 10}


def test_an_integer_past_the_bound_says_the_bound(served: Served, tmp_path: Path) -> None:
    rec = _app(served, tmp_path)
    c = signed_in(served)
    url = f"/console/apps/{rec.install_id}/settings"
    fields = _form(c.get(url).text)
    fields["setting-batch"] = "1" + "0" * 18
    r: httpx.Response = c.post(url, data=fields, headers={"Origin": served.url})
    assert r.status_code == 400
    assert "at most 18 digits" in r.text and "must be an integer" not in r.text


def test_the_uninstall_page_says_when_it_cannot_tell(served: Served, tmp_path: Path) -> None:
    rec = _app(served, tmp_path)
    # Connected to a workspace the host will not speak to: nothing can be counted there.
    rc_config.save(served.home, "http://chat.example.com", "svc", "token")
    c = signed_in(served)
    page = c.get(f"/console/apps/{rec.install_id}/uninstall")
    assert page.status_code == 200, page.text
    assert "0 user(s)" not in page.text and "cannot tell how many" in page.text
    assert "plain http" in page.text
    assert re.search(r'id="users-keep" checked', page.text)
    assert not re.search(r'id="users-deactivate" checked', page.text)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = c.post(f"/console/apps/{rec.install_id}/uninstall", headers={"Origin": served.url},
               data={"csrf": csrf, "users": "keep", "agents": "remove", "confirm": "yes"})
    assert r.status_code == 503 and "cannot be asked" in r.text, (r.status_code, r.text)
    assert "still installed" in r.text
    assert _settings(served, rec) == {}  # still installed
    r = c.post(f"/console/apps/{rec.install_id}/uninstall", headers={"Origin": served.url},
               data={"csrf": csrf, "users": "keep", "agents": "keep", "confirm": "yes"})
    assert r.status_code in (200, 303), r.text


def test_a_setting_with_a_default_emptied_takes_its_default(served: Served,
                                                            tmp_path: Path) -> None:
    """Emptied is "as if never set": what a new install (and an update) gives it."""
    rec = install(served.home, write_app(tmp_path / "def", "crm-sync", ["livechat.read"], [],
                                         SRC, settings=SETTINGS + '''
[[setting]]
key = "retries"
type = "int"
label = "Retries"
default = 3
'''))
    with InstallStore(served.home.host_store) as store:
        store.set_settings(rec.install_id, {"retries": 7, "batch": 5}, ["retries", "batch"])
    c = signed_in(served)
    url = f"/console/apps/{rec.install_id}/settings"
    fields = _form(c.get(url).text)
    fields.update({"setting-retries": "", "setting-batch": ""})
    r = c.post(url, data=fields, headers={"Origin": served.url})
    assert r.status_code in (200, 303), r.text
    assert _settings(served, rec) == {"retries": 3}
