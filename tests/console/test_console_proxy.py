"""The console behind a TLS reverse proxy on the same machine (`serve --console-origin`): the
proxy's name is answered, a page of its origin may post, the cookie is `Secure`, whether the
proxy passes the browser's Host on or rewrites it to loopback; any other name or origin is
still refused. The proxy is the client, so its local account is the session's (here the test's
own)."""
from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from conhelp import PASSWORD, PROXY_ORIGIN, Served
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.cli.main import root
from host.console.origins import parse_origin

FORM = {"username": "operator", "password": PASSWORD}
NAME = "console.example.com"


@pytest.mark.parametrize("host", [NAME, None])  # passed on, or the upstream's (loopback)
def test_a_proxys_origin_signs_in_and_acts(served_behind_proxy: Served,
                                           host: str | None) -> None:
    s = served_behind_proxy
    headers = {"Origin": PROXY_ORIGIN, **({"Host": host} if host else {})}
    c = httpx.Client(base_url=s.url, timeout=10, headers=headers)
    r = c.post("/console/login", data=FORM)
    assert r.status_code == 303, r.text
    assert "secure" in r.headers["set-cookie"].lower()
    # httpx keeps a Secure cookie for https only: the proxy passes it on as the browser sent it
    c.cookies.set("stockade_console", r.cookies["stockade_console"])
    page = c.get("/console/apps")
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    iid = re.search(r'action="/console/apps/([^/]+)/disable"', page.text).group(1)  # type: ignore[union-attr]
    r = c.post(f"/console/apps/{iid}/disable", data={"csrf": csrf},
               headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = c.post(f"/console/apps/{iid}/disable", data={"csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/console/apps"
    with InstallStore(s.home.host_db) as store:
        rec = store.get(iid)
    assert rec is not None and not rec.enabled


def test_behind_a_proxy_other_names_and_origins_are_still_refused(
        served_behind_proxy: Served) -> None:
    s = served_behind_proxy
    r = httpx.post(f"{s.url}/console/login", data=FORM,
                   headers={"Host": "evil.example", "Origin": "https://evil.example"})
    assert r.status_code == 400
    r = httpx.post(f"{s.url}/console/login", data=FORM, headers={"Origin": "http://" + NAME})
    assert r.status_code == 403  # the http origin of that name is not the one configured
    # on loopback, the console is what it was: its own origin, a cookie without Secure
    r = httpx.post(f"{s.url}/console/login", data=FORM, headers={"Origin": s.url})
    assert r.status_code == 303 and "secure" not in r.headers["set-cookie"].lower()


def test_a_console_origin_is_an_origin(tmp_path: Path) -> None:
    assert parse_origin("https://Console.Example.com/") == "https://console.example.com"
    assert parse_origin("https://console.example.com:443") == "https://console.example.com"
    assert parse_origin("https://c.example:8443") == "https://c.example:8443"
    for bad in ("console.example.com", "ftp://c.example", "https://c.example/console",
                "https://u:p@c.example", "https://c.example:x", "https://"):
        with pytest.raises(ValueError):
            parse_origin(bad)
    r = CliRunner().invoke(root, ["--home", str(tmp_path / "home"), "serve",
                                  "--console-origin", "https://c.example/console"])
    assert r.exit_code == 2 and "--console-origin" in r.output, r.output
