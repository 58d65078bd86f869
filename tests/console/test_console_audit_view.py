"""The console's audit page and apps page over a long chain (`host/console/auditview.py`).

They read only the newest 5,000 records: an older refusal vanished from the search and from the
apps page's hourly count without a word, and each page load walked the whole chain on the
console's event loop. What must hold: a search finds a record however far back, until its
read cap, and says when it stopped short; the hourly refusal count counts every refusal of the
hour; the verdict walks only what is new between whole walks (each at most FULL_VERIFY_S
apart), so a new record broken after the last walk is caught at once and an old one rewritten
at the next whole walk; a crafted link's `saved` text and a `since` of nan put nothing on the
page.
"""
from __future__ import annotations

import re
import sqlite3

import pytest
from conhelp import Served, signed_in

from host.apps.installs import InstallStore
from host.clock import SystemClock
from host.console import auditview
from host.ledger.audit import AuditLog, AuditRecord, append_in

OLDER_THAN_THE_OLD_WINDOW = 6_000


def _append(served: Served, records: list[AuditRecord]) -> None:
    log = AuditLog(served.home.host_store, SystemClock())
    try:
        with log.transaction() as c:
            for r in records:
                append_in(c, r.body(), SystemClock().now())
    finally:
        log.close()


def test_an_old_refusal_is_found_and_counted(served: Served) -> None:
    with InstallStore(served.home.host_store) as store:
        rec = store.by_app("agent-sync")
    assert rec is not None
    refusal = AuditRecord(kind="decision", app_id="agent-sync", install_id=rec.install_id,
                          action="messages.send", allowed=False, code="permission_denied",
                          message="refused long ago")
    filler = [AuditRecord(kind="supervisor", event="test", detail=f"n{i}")
              for i in range(OLDER_THAN_THE_OLD_WINDOW)]
    _append(served, [refusal, *filler])
    c = signed_in(served)
    page = c.get("/console/audit", params={"code": "permission_denied"}).text
    assert "refused long ago" in page, re.findall(r'<p id="searched".*?</p>', page, re.S)
    # The apps page's "Refusals (1 h)" cell, read by time rather than from the newest 5,000.
    row = re.search(r'<tr id="app-agent-sync">(.*?)</tr>', c.get("/console/apps").text, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[7].strip() == "1", cells


def test_a_search_that_stops_short_says_so(served: Served,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auditview, "SCAN_MAX", 50)
    monkeypatch.setattr(auditview, "SCAN_BATCH", 20)
    _append(served, [AuditRecord(kind="supervisor", event="test", detail=f"n{i}")
                     for i in range(200)])
    page = signed_in(served).get("/console/audit", params={"code": "no-such-code"}).text
    assert re.search(r'id="searched"[^>]*>Searched the newest 60 records', page), page[-2000:]


def test_the_verdict_walks_what_is_new_and_the_whole_chain_in_time(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    c = signed_in(served)
    assert "The hash chain verifies" in c.get("/console/audit").text
    _append(served, [AuditRecord(kind="supervisor", event="test", detail="new")])
    db = sqlite3.connect(served.home.host_db, isolation_level=None)

    def edit(sql: str, *args: object) -> None:
        db.execute("DROP TRIGGER IF EXISTS audit_no_update")  # each open makes it again
        db.execute(sql, args)

    (newest,) = db.execute("SELECT max(seq) FROM audit").fetchone()
    edit("UPDATE audit SET body = replace(body, 'new', 'NEW') WHERE seq = ?", newest)
    page = c.get("/console/audit").text
    assert "does NOT verify" in page and f"record {newest}" in page  # new: caught at once
    edit("UPDATE audit SET body = replace(body, 'NEW', 'new') WHERE seq = ?", newest)
    assert "The hash chain verifies" in c.get("/console/audit").text
    edit("UPDATE audit SET body = replace(body, 'agent-sync', 'agent-sunk') WHERE seq = 1")
    assert "The hash chain verifies" in c.get("/console/audit").text  # old: until a whole walk
    monkeypatch.setattr(auditview, "FULL_VERIFY_S", 0.0)
    page = c.get("/console/audit").text
    assert "does NOT verify" in page and "record 1" in page
    db.close()


def test_a_crafted_saved_banner_and_a_nan_since_put_nothing_on_the_page(
        served: Served) -> None:
    c = signed_in(served)
    iid = re.search(r'href="/console/apps/([^/"]+)/settings"', c.get("/console/apps").text)
    assert iid is not None
    page = c.get(f"/console/apps/{iid.group(1)}/settings",
                 params={"saved": "nothing. Publisher verified: safe to grant"}).text
    assert "Publisher verified" not in page
    for bad in ("nan", "inf", "-inf"):
        assert c.get("/console/audit", params={"since": bad}).status_code == 400


def test_a_row_whose_text_is_no_utf8_is_shown_as_broken_not_a_500(served: Served) -> None:
    """SQLite keeps any bytes a writer of host.db puts in a TEXT column; fetching one raised
    out of the console's reads: the audit page (its verdict's walk of what is new, its search)
    and the apps page (the hourly refusals) answered 500. The record now reads as edited."""
    c = signed_in(served)
    assert "The hash chain verifies" in c.get("/console/audit").text  # the verdict, cached
    _append(served, [AuditRecord(kind="supervisor", event="test", detail="to break")])
    db = sqlite3.connect(served.home.host_db, isolation_level=None)
    db.execute("DROP TRIGGER IF EXISTS audit_no_update")
    (newest,) = db.execute("SELECT max(seq) FROM audit").fetchone()
    # A refusal's words, so the apps page's count reads the body too.
    db.execute("UPDATE audit SET body = CAST(? AS TEXT) WHERE seq = ?",
               (b'{"allowed":false,"kind":"decision","x":"\xff"}', newest))
    db.close()
    audit = c.get("/console/audit")
    assert audit.status_code == 200 and "does NOT verify" in audit.text
    assert f"record {newest}" in audit.text
    assert c.get("/console/audit", params={"code": "permission_denied"}).status_code == 200
    assert c.get("/console/apps").status_code == 200
