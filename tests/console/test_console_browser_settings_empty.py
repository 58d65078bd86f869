"""Emptying settings in a real headless Chromium: the form as the browser posts it. An optional
select no one set stays unset when the page is saved for another field (the browser posted its
first option and the save set it), and an optional integer and select set once are emptied by
the operator (unset, as if never set: `host/console/settings.py`)."""
from __future__ import annotations

from pathlib import Path

from apphelp import install, settings_toml, write_app
from browserhelp import browser_fixture  # noqa: F401  (the Chromium fixture)
from conhelp import PASSWORD, SRC, Served
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from host.apps.installs import InstallStore

SETTINGS = settings_toml("batch", "mode")


# The page the save left may be read while the next one replaces it: its element goes stale.
GONE = (StaleElementReferenceException,)


def _settings(served: Served, install_id: str) -> dict[str, object]:
    with InstallStore(served.home.host_store) as store:
        now = store.get(install_id)
    assert now is not None
    return dict(now.settings)


def test_optional_settings_are_emptied_and_an_unset_select_stays_unset(
        served: Served, browser: webdriver.Chrome, tmp_path: Path) -> None:
    rec = install(served.home, write_app(tmp_path / "set", "crm-sync", ["livechat.read"], [],
                                         SRC, settings=SETTINGS))
    b = browser
    b.get(f"{served.url}/console/login")
    b.find_element(By.ID, "username").send_keys("operator")
    b.find_element(By.ID, "password").send_keys(PASSWORD)
    b.find_element(By.ID, "sign-in").click()
    WebDriverWait(b, 15).until(lambda d: d.current_url.endswith("/console/apps"))
    url = f"{served.url}/console/apps/{rec.install_id}/settings"
    b.get(url)
    b.find_element(By.ID, "setting-batch").send_keys("25")
    b.find_element(By.ID, "save-settings").click()
    WebDriverWait(b, 15).until(lambda d: "saved=" in d.current_url)
    assert _settings(served, rec.install_id) == {"batch": 25}  # the select left unset
    Select(b.find_element(By.ID, "setting-mode")).select_by_value("safe")
    b.find_element(By.ID, "save-settings").click()
    WebDriverWait(b, 15, ignored_exceptions=GONE).until(
        lambda d: "mode" in d.find_element(By.ID, "saved").text)
    assert _settings(served, rec.install_id) == {"batch": 25, "mode": "safe"}
    b.find_element(By.ID, "setting-batch").clear()
    Select(b.find_element(By.ID, "setting-mode")).select_by_value("")
    b.find_element(By.ID, "save-settings").click()
    WebDriverWait(b, 15, ignored_exceptions=GONE).until(
        lambda d: "batch" in d.find_element(By.ID, "saved").text)
    assert _settings(served, rec.install_id) == {}
    assert b.find_element(By.ID, "setting-batch").get_attribute("value") == ""
