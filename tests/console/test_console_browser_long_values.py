"""Long unbroken author text in a real headless Chromium: an app's words (a refusal's message,
a name) with no space in them must wrap inside their cell, never widen the page past the window
so the host's own columns (actor, code, the switch) leave the screen."""
from __future__ import annotations

import time

from browserhelp import browser_fixture  # noqa: F401  (the Chromium fixture)
from conhelp import PASSWORD, Served
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from host.clock import SystemClock
from host.ledger.audit import AuditLog, AuditRecord, append_in


def test_an_unbroken_message_wraps_in_its_cell(served: Served,
                                               browser: webdriver.Chrome) -> None:
    log = AuditLog(served.home.host_store, SystemClock())
    try:
        with log.transaction() as c:
            append_in(c, AuditRecord(kind="supervisor", event="test", code="long",
                                     detail="W" * 500).body(), time.time())
    finally:
        log.close()
    b = browser
    b.set_window_size(1280, 800)
    b.get(f"{served.url}/console/login")
    b.find_element(By.ID, "username").send_keys("operator")
    b.find_element(By.ID, "password").send_keys(PASSWORD)
    b.find_element(By.ID, "sign-in").click()
    WebDriverWait(b, 15).until(lambda d: d.current_url.endswith("/console/apps"))
    for path in ("/console/audit?code=long", None):
        if path is None:  # the record's own page, where the message is whole
            b.find_element(By.CSS_SELECTOR, "#records a").click()
            WebDriverWait(b, 15).until(lambda d: "/console/audit/" in d.current_url)
        else:
            b.get(f"{served.url}{path}")
        wide = b.execute_script("return document.documentElement.scrollWidth")
        window = b.execute_script("return document.documentElement.clientWidth")
        assert wide <= window, (b.current_url, wide, window)
