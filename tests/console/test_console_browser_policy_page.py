"""The policy page in a real headless Chromium: a policy file's name is the operator's (or
whoever could write the folder) and may be long and unbroken, with a right-to-left override in
it; it is shown escaped and wraps, never widening the page past the window."""
from __future__ import annotations

from browserhelp import browser_fixture  # noqa: F401  (the Chromium fixture)
from conhelp import PASSWORD, Served
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def test_a_long_policy_file_name_wraps_and_is_inert(served: Served,
                                                    browser: webdriver.Chrome) -> None:
    name = "\u202e" + "W" * 240 + ".toml"  # near the file system's 255 bytes
    (served.home.policies_dir / name).write_text('schema = 1\nname = "long"\n')
    b = browser
    b.set_window_size(1280, 800)
    b.get(f"{served.url}/console/login")
    b.find_element(By.ID, "username").send_keys("operator")
    b.find_element(By.ID, "password").send_keys(PASSWORD)
    b.find_element(By.ID, "sign-in").click()
    WebDriverWait(b, 15).until(lambda d: d.current_url.endswith("/console/apps"))
    b.get(f"{served.url}/console/policy")
    text = b.find_element(By.ID, "revision").text
    assert "\u202e" not in text and "\\u202eWWW" in text, text
    wide = b.execute_script("return document.documentElement.scrollWidth")
    window = b.execute_script("return document.documentElement.clientWidth")
    assert wide <= window, (wide, window)
