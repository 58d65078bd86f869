"""The console in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven by
Selenium; nothing is downloaded at test time): an operator signs in, sees the apps with their
state and the hostile name rendered inert, disables one, finds the console's own audit record,
and signs out. Each page's screenshot is saved in test-artifacts/console/."""
from __future__ import annotations

from pathlib import Path

from apphelp import write_app
from browserhelp import browser_fixture  # noqa: F401  (the Chromium fixture)
from conhelp import HOSTILE_NAME, PASSWORD, Served
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from typer.testing import CliRunner

from host.apps.packages import package_folder
from host.cli.main import root

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"


def _submit(b: webdriver.Chrome, button: WebElement) -> None:
    """Click a button that submits a form, and wait until the next page has replaced this one."""
    page = b.find_element(By.TAG_NAME, "html")
    button.click()

    def replaced(driver: webdriver.Chrome) -> bool:
        try:
            page.is_enabled()  # raises once the old document is gone
        except WebDriverException:  # stale element, or "node does not belong to the document"
            return bool(driver.execute_script("return document.readyState") == "complete")
        return False

    WebDriverWait(b, 15).until(replaced)


def _shot(driver: webdriver.Chrome, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_an_operator_signs_in_disables_an_app_and_finds_it_audited(
        served: Served, browser: webdriver.Chrome, tmp_path: Path) -> None:
    b = browser
    b.get(f"{served.url}/console/apps")
    assert b.current_url.endswith("/console/login")  # not signed in: sent to sign in
    b.find_element(By.ID, "username").send_keys("operator")
    b.find_element(By.ID, "password").send_keys("not the password")
    _submit(b, b.find_element(By.ID, "sign-in"))
    assert "not an operator" in b.find_element(By.ID, "error").text
    _shot(b, "1-sign-in-refused")
    b.find_element(By.ID, "username").clear()
    b.find_element(By.ID, "username").send_keys("operator")
    b.find_element(By.ID, "password").send_keys(PASSWORD)
    _submit(b, b.find_element(By.ID, "sign-in"))
    assert b.current_url.endswith("/console/apps")
    row = b.find_element(By.ID, "app-agent-sync")
    assert "not serving" in row.text  # installed and enabled, no host serving it here
    shady = b.find_element(By.ID, "app-shady").text
    assert "<script>alert(1)</script>" in shady and "\\u200b" in shady  # shown, never run
    assert b.find_elements(By.TAG_NAME, "script") == []
    assert HOSTILE_NAME.split("\\")[0] in shady
    _shot(b, "2-apps")
    _submit(b, row.find_element(By.CLASS_NAME, "switch"))
    assert b.current_url.endswith("/console/apps")
    row = b.find_element(By.ID, "app-agent-sync")
    assert "disabled" in row.text and "disabled by operator in the console" in row.text
    assert row.find_element(By.CLASS_NAME, "switch").text == "Enable"
    _shot(b, "3-app-disabled")
    _submit(b, b.find_element(By.LINK_TEXT, "Audit"))
    b.find_element(By.ID, "filter-app").send_keys("agent-sync")
    b.find_element(By.ID, "filter-code").send_keys("ok")
    _submit(b, b.find_element(By.ID, "search"))
    assert "The hash chain verifies" in b.find_element(By.ID, "chain").text
    b.find_element(By.ID, "filter-code").clear()
    _submit(b, b.find_element(By.ID, "search"))
    records = b.find_element(By.ID, "records").text
    assert "operator.disable" in records and "console:operator" in records
    _shot(b, "4-audit")
    _submit(b, b.find_element(By.LINK_TEXT, "Quotas"))
    assert "Seats:" in b.find_element(By.ID, "seats").text
    _shot(b, "5-quotas")
    _submit(b, b.find_element(By.LINK_TEXT, "Policy and keys"))
    assert "sha256:" in b.find_element(By.ID, "revision").text
    assert "current" in b.find_element(By.ID, "keys").text
    _shot(b, "6-policy-and-keys")
    # install a package: upload, read the disclosure, tick one grant, accept it unsigned
    folder = write_app(tmp_path / "pkg", "crm-sync", ["livechat.read", "messages.read"], [],
                       "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    zip_path = tmp_path / "crm-sync.zip"
    zip_path.write_bytes(package_folder(folder)[1])
    _submit(b, b.find_element(By.LINK_TEXT, "Install"))
    b.find_element(By.ID, "package").send_keys(str(zip_path))
    _submit(b, b.find_element(By.ID, "upload"))
    assert "UNSIGNED" in b.find_element(By.ID, "publisher").text
    b.find_element(By.ID, "grant-livechat.read").click()
    b.find_element(By.ID, "allow-unsigned").click()
    _shot(b, "7-consent")
    _submit(b, b.find_element(By.ID, "consent"))
    assert "crm-sync" in b.find_element(By.ID, "apps").text
    # a wider version of crm-sync waits for consent: review its diff, approve one new grant
    v2 = write_app(tmp_path / "pkg2", "crm-sync", ["livechat.read", "messages.read", "http"],
                   [], "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    (v2 / "app.toml").write_text((v2 / "app.toml").read_text().replace(
        'version = "1.0.0"', 'version = "1.1.0"'))
    r = CliRunner().invoke(root, ["--home", str(served.home.root), "app", "update", "crm-sync",
                                  str(v2), "--allow-unsigned"])
    assert r.exit_code == 1, r.output
    _submit(b, b.find_element(By.LINK_TEXT, "Updates"))
    _submit(b, b.find_element(By.ID, "review-crm-sync"))
    assert "permissions added" in b.find_element(By.ID, "diff").text
    b.find_element(By.ID, "grant-http").click()  # the one permission this version adds
    b.find_element(By.ID, "allow-unsigned").click()  # the fixture's packages are unsigned
    _shot(b, "8-update-review")
    _submit(b, b.find_element(By.ID, "approve"))
    assert "No update is waiting" in b.find_element(By.ID, "pending").text
    _shot(b, "9-updates")
    # an app's settings, one audit record, and the uninstall questions
    _submit(b, b.find_element(By.LINK_TEXT, "Apps"))
    _submit(b, b.find_element(By.LINK_TEXT, "crm-sync"))
    assert "Settings of crm-sync" in b.find_element(By.TAG_NAME, "h1").text
    _shot(b, "10-settings")
    _submit(b, b.find_element(By.LINK_TEXT, "Audit"))
    _submit(b, b.find_element(By.CSS_SELECTOR, "#records a"))
    assert "Previous hash" in b.find_element(By.ID, "record").text
    _shot(b, "11-audit-record")
    _submit(b, b.find_element(By.LINK_TEXT, "Apps"))
    _submit(b, b.find_element(By.ID, "uninstall-crm-sync"))
    b.find_element(By.ID, "confirm-uninstall").click()
    _shot(b, "12-uninstall")
    _submit(b, b.find_element(By.ID, "uninstall"))
    assert "crm-sync" not in b.find_element(By.ID, "apps").text
    _submit(b, b.find_element(By.XPATH, "//button[text()='Sign out']"))
    assert b.current_url.endswith("/console/login")
    b.get(f"{served.url}/console/apps")
    assert b.current_url.endswith("/console/login")  # the session is gone
