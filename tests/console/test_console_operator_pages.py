"""The operator pages under attack and under a demanding operator: the audit search's `since`
over records committed out of time order, an audit record's own page, and a settings save
racing another operator's change (`host/console/auditview.py`, `app.py`, `settings.py`).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from apphelp import install, write_app
from conhelp import SRC, Served, signed_in

from host.apps.installs import InstallStore
from host.clock import SystemClock
from host.console import auditview
from host.ledger.audit import AuditLog, AuditRecord, append_in, open_readonly

SETTINGS = '''
[[setting]]
key = "endpoint"
type = "string"
label = "CRM endpoint"

[[setting]]
key = "batch"
type = "int"
label = "Batch size"
'''


def _append_at(served: Served, stamped: list[tuple[AuditRecord, float]]) -> None:
    """Records committed in this order with these times (as a host whose clock stepped back,
    or several hosts on one store, commit them)."""
    log = AuditLog(served.home.host_store, SystemClock())
    try:
        with log.transaction() as c:
            for r, ts in stamped:
                append_in(c, r.body(), ts)
    finally:
        log.close()


def test_a_since_search_finds_a_record_committed_before_an_older_stamped_one(
        served: Served) -> None:
    since = time.time() - 1000
    found = AuditRecord(kind="supervisor", event="test", detail="stamped after since")
    # The clock stepped back 30 s (NTP) right after: the next record is stamped before `since`.
    stepped = AuditRecord(kind="supervisor", event="test", detail="after the step")
    _append_at(served, [(found, since + 10), (stepped, since - 20)])
    page = signed_in(served).get("/console/audit", params={"since": str(since)}).text
    assert "stamped after since" in page
    assert "after the step" not in page  # stamped before `since`: filtered, as asked


def test_the_hourly_refusal_count_survives_a_clock_step_back(served: Served) -> None:
    with InstallStore(served.home.host_store) as store:
        rec = store.by_app("agent-sync")
    assert rec is not None
    now = time.time()
    refusal = AuditRecord(kind="decision", app_id="agent-sync", install_id=rec.install_id,
                          action="messages.send", allowed=False, code="permission_denied",
                          message="refused in the hour")
    stepped = AuditRecord(kind="supervisor", event="test", detail="after the step")
    _append_at(served, [(refusal, now - 3590), (stepped, now - 3650)])
    page = signed_in(served).get("/console/apps").text
    row = re.search(r'<tr id="app-agent-sync">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[7].strip() == "1", cells


def test_an_audit_records_own_page_shows_every_field_whole(served: Served) -> None:
    # An app's words reach a record's message (capped at 512 by the record): what it hides
    # after the list's cut must still be on the record's own page.
    tail = "THE-END-OF-THE-MESSAGE"
    msg = "x" * (500 - len(tail)) + tail
    _append_at(served, [(AuditRecord(kind="supervisor", event="test", detail=msg),
                         time.time())])
    log = open_readonly(served.home.host_db, SystemClock())
    try:
        seq = log.head()[0]
    finally:
        log.close()
    page = signed_in(served).get(f"/console/audit/{seq}").text
    assert tail in page


def test_a_settings_save_never_undoes_a_change_made_meanwhile(served: Served,
                                                               tmp_path: Path) -> None:
    rec = install(served.home, write_app(tmp_path / "set", "crm-sync", ["livechat.read"], [],
                                         SRC, settings=SETTINGS))
    c = signed_in(served)
    url = f"/console/apps/{rec.install_id}/settings"
    page = c.get(url).text
    # The form exactly as the browser posts it: every field as the page filled it.
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    fields.update({n: "" for n in re.findall(r'<input name="(setting-[^"]+)"', page)})
    fields.update(dict(re.findall(r'<input name="(setting-[^"]+)" id="[^"]+" value="([^"]*)"',
                                  page)))
    # Meanwhile another operator sets the endpoint from the CLI (`app settings crm-sync ...`).
    with InstallStore(served.home.host_store) as store:
        store.set_settings(rec.install_id, {"endpoint": "https://crm.example/v2"},
                           ["endpoint"])
    fields["setting-batch"] = "25"  # this operator changes only the batch size
    r = c.post(url, data=fields, headers={"Origin": served.url})
    with InstallStore(served.home.host_store) as store:
        now = store.get(rec.install_id)
    assert now is not None
    assert now.settings.get("endpoint") == "https://crm.example/v2", (r.status_code, now.settings)
    assert now.settings.get("batch") == 25


def test_a_settings_save_over_a_value_changed_meanwhile_is_refused(served: Served,
                                                                   tmp_path: Path) -> None:
    rec = install(served.home, write_app(tmp_path / "set", "crm-sync", ["livechat.read"], [],
                                         SRC, settings=SETTINGS))
    c = signed_in(served)
    url = f"/console/apps/{rec.install_id}/settings"
    page = c.get(url).text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    with InstallStore(served.home.host_store) as store:
        store.set_settings(rec.install_id, {"batch": 5}, ["batch"])
    fields["setting-batch"] = "25"  # both changed the batch size: the later one is told
    r: httpx.Response = c.post(url, data=fields, headers={"Origin": served.url})
    assert r.status_code == 409, r.text
    assert "changed meanwhile" in r.text
    with InstallStore(served.home.host_store) as store:
        now = store.get(rec.install_id)
    assert now is not None and now.settings.get("batch") == 5


def test_a_search_pages_back_to_older_matches(served: Served) -> None:
    # More matches than a page holds: the ones past the newest 200 must be reachable.
    now = time.time()
    _append_at(served, [(AuditRecord(kind="supervisor", event="test", detail=f"match-{i:03d}",
                                     code="paged"), now - 300 + i) for i in range(250)])
    c = signed_in(served)
    first = c.get("/console/audit", params={"code": "paged"}).text
    assert "match-249" in first and "match-050" in first and "match-049" not in first
    older = re.search(r'<a id="older" href="([^"]+)"', first)
    assert older is not None, first[-1500:]
    second = c.get(older.group(1).replace("&amp;", "&")).text
    shown = re.findall(r"match-(\d{3})", second)
    assert shown == [f"{i:03d}" for i in range(49, -1, -1)], shown
    assert 'id="older"' not in second  # read back to the chain's start: nothing older


def test_the_audit_list_shows_times_in_utc(served: Served) -> None:
    _append_at(served, [(AuditRecord(kind="supervisor", event="test", detail="timed"),
                         1796288400.0)])  # 2026-12-03T09:00:00Z
    page = signed_in(served).get("/console/audit", params={"since": "2026-12-03T08:59"}).text
    assert "2026-12-03 09:00:00" in page
    assert re.search(r"walked whole at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page), page


def test_a_bad_before_is_a_clear_400(served: Served) -> None:
    c = signed_in(served)
    for bad in ("-1", "x", "0", "9" * 40, str(2**63)):
        r = c.get("/console/audit", params={"before": bad})
        assert r.status_code == 400 and "before:" in r.text, (bad, r.status_code)
    assert c.get("/console/audit", params={"before": str(2**63 - 1)}).status_code == 200


def test_a_page_of_the_most_settings_a_manifest_may_declare_saves(served: Served,
                                                                  tmp_path: Path) -> None:
    from host.apps.manifest import MAX_SETTINGS

    many = "".join(f'\n[[setting]]\nkey = "k{i}"\ntype = "string"\nlabel = "K{i}"\n'
                   for i in range(MAX_SETTINGS))
    rec = install(served.home, write_app(tmp_path / "many", "crm-sync", ["livechat.read"], [],
                                         SRC, settings=many))
    c = signed_in(served)
    url = f"/console/apps/{rec.install_id}/settings"
    page = c.get(url).text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    fields.update({n: "" for n in re.findall(r'<input name="(setting-[^"]+)"', page)})
    fields[f"setting-k{MAX_SETTINGS - 1}"] = "last"
    r = c.post(url, data=fields, headers={"Origin": served.url})
    assert r.status_code == 303, (r.status_code, r.text[:300])
    with InstallStore(served.home.host_store) as store:
        now = store.get(rec.install_id)
    assert now is not None and now.settings.get(f"k{MAX_SETTINGS - 1}") == "last"


def test_a_refused_save_keeps_what_the_operator_typed(served: Served, tmp_path: Path) -> None:
    rec = install(served.home, write_app(tmp_path / "set", "crm-sync", ["livechat.read"], [],
                                         SRC, settings=SETTINGS))
    c = signed_in(served)
    url = f"/console/apps/{rec.install_id}/settings"
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                             c.get(url).text))
    fields.update({"setting-endpoint": "https://crm.example/typed", "setting-batch": "many"})
    r = c.post(url, data=fields, headers={"Origin": served.url})
    assert r.status_code == 400 and "batch" in r.text
    # The form comes back as typed, beside the error, and still as the page first showed it
    # underneath (a save made after the fix still sees another operator's change meanwhile).
    assert 'id="setting-endpoint" value="https://crm.example/typed"' in r.text
    assert 'id="setting-batch" value="many"' in r.text
    assert '<input type="hidden" name="was-endpoint" value="">' in r.text
    with InstallStore(served.home.host_store) as store:
        now = store.get(rec.install_id)
    assert now is not None and now.settings.get("endpoint") in (None, "")  # nothing written


def test_an_older_page_cut_short_says_where_it_read_from(served: Served,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auditview, "SCAN_MAX", 50)
    monkeypatch.setattr(auditview, "SCAN_BATCH", 20)
    now = time.time()
    _append_at(served, [(AuditRecord(kind="supervisor", event="test", detail=f"n{i}"), now)
                        for i in range(200)])
    c = signed_in(served)
    first = c.get("/console/audit", params={"code": "no-such-code"}).text
    older = re.search(r'<a id="older" href="([^"]+)"', first)
    assert older is not None
    second = c.get(older.group(1).replace("&amp;", "&")).text
    note = re.search(r'<p id="searched"[^>]*>(.*?)</p>', second, re.S)
    assert note is not None and "newest" not in note.group(1), note
    assert re.search(r"Searched 60 records before record \d+", note.group(1)), note.group(1)


SECRET_SETTINGS = '''
[[setting]]
key = "crm_token"
type = "secret"
label = "CRM token"
'''


def test_a_secret_typed_over_one_rotated_meanwhile_is_refused(served: Served,
                                                              tmp_path: Path) -> None:
    rec = install(served.home, write_app(tmp_path / "sec", "crm-sync", ["livechat.read"], [],
                                         SRC, settings=SECRET_SETTINGS))
    with InstallStore(served.home.host_store) as store:
        store.set_settings(rec.install_id, {"crm_token": "first-token"}, ["crm_token"])
    c = signed_in(served)
    url = f"/console/apps/{rec.install_id}/settings"
    page = c.get(url).text
    assert "first-token" not in page
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    # Another operator rotates the token from the CLI while this page is open.
    with InstallStore(served.home.host_store) as store:
        store.set_settings(rec.install_id, {"crm_token": "rotated-token"}, ["crm_token"])
    r = c.post(url, data={**fields, "setting-crm_token": "typed-token"},
               headers={"Origin": served.url})
    assert r.status_code == 409, r.status_code
    with InstallStore(served.home.host_store) as store:
        now = store.get(rec.install_id)
    assert now is not None and now.settings["crm_token"] == "rotated-token"
    # From a page read after the rotation, the typed token is saved.
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                             c.get(url).text))
    r = c.post(url, data={**fields, "setting-crm_token": "typed-token"},
               headers={"Origin": served.url})
    assert r.status_code == 303, r.status_code
    with InstallStore(served.home.host_store) as store:
        now = store.get(rec.install_id)
    assert now is not None and now.settings["crm_token"] == "typed-token"
