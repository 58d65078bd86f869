"""The settings page in a real headless Chromium: the form the browser posts (every field, as
the page filled it) changes only what the operator changed, never a value another operator set
from the CLI while the page was open (`host/console/settings.py`)."""
from __future__ import annotations

from pathlib import Path

from apphelp import install, write_app
from browserhelp import browser_fixture  # noqa: F401  (the Chromium fixture)
from conhelp import PASSWORD, SRC, Served
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from host.apps.installs import InstallStore

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


def test_saving_the_page_keeps_a_setting_changed_from_the_cli_meanwhile(
        served: Served, browser: webdriver.Chrome, tmp_path: Path) -> None:
    rec = install(served.home, write_app(tmp_path / "set", "crm-sync", ["livechat.read"], [],
                                         SRC, settings=SETTINGS))
    b = browser
    b.get(f"{served.url}/console/login")
    b.find_element(By.ID, "username").send_keys("operator")
    b.find_element(By.ID, "password").send_keys(PASSWORD)
    b.find_element(By.ID, "sign-in").click()
    WebDriverWait(b, 15).until(lambda d: d.current_url.endswith("/console/apps"))
    b.get(f"{served.url}/console/apps/{rec.install_id}/settings")
    # Another operator, at the CLI: `stockade app settings crm-sync endpoint=...`
    with InstallStore(served.home.host_store) as store:
        store.set_settings(rec.install_id, {"endpoint": "https://crm.example/v2"}, ["endpoint"])
    b.find_element(By.ID, "setting-batch").send_keys("25")
    b.find_element(By.ID, "save-settings").click()
    WebDriverWait(b, 15).until(lambda d: "saved=" in d.current_url)
    assert "batch" in b.find_element(By.ID, "saved").text
    with InstallStore(served.home.host_store) as store:
        now = store.get(rec.install_id)
    assert now is not None and now.settings.get("batch") == 25
    assert now.settings.get("endpoint") == "https://crm.example/v2", now.settings
    assert b.find_element(By.ID, "setting-endpoint").get_attribute("value") == \
        "https://crm.example/v2"
