"""Behind a TLS proxy that passes the browser's Host on (`serve --console-origin https://NAME`),
the request's own origin as the console sees it is `http://NAME` (the proxy's upstream hop is
plain HTTP): a page of that plain-HTTP origin (a network attacker's, or a port-80 site of the
same name) must be refused as any other origin is, on the sign-in form and on every change,
never taken for the console's own page (docs/CONSOLE.md: "its `http://` one too")."""
from __future__ import annotations

import re

import httpx
from conhelp import PASSWORD, PROXY_ORIGIN, Served

from host.apps.installs import InstallStore

FORM = {"username": "operator", "password": PASSWORD}
NAME = "console.example.com"


def test_the_plain_http_origin_of_the_proxys_name_is_refused(served_behind_proxy: Served) -> None:
    s = served_behind_proxy
    c = httpx.Client(base_url=s.url, timeout=10, headers={"Host": NAME})  # passed on
    plain = {"Origin": f"http://{NAME}"}
    r = c.post("/console/login", data=FORM, headers=plain)
    assert r.status_code == 403, (r.status_code, r.headers.get("set-cookie"))
    r = c.post("/console/login", data=FORM, headers={"Origin": PROXY_ORIGIN})
    assert r.status_code == 303, r.text
    c.cookies.set("stockade_console", r.cookies["stockade_console"])
    page = c.get("/console/apps")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    iid = re.search(r'action="/console/apps/([^/]+)/disable"', page.text).group(1)  # type: ignore[union-attr]
    for headers in (plain, {"Referer": f"http://{NAME}/console/apps"}):
        r = c.post(f"/console/apps/{iid}/disable", data={"csrf": csrf}, headers=headers)
        assert r.status_code == 403, (headers, r.status_code)
    with InstallStore(s.home.host_db) as store:
        rec = store.get(iid)
    assert rec is not None and rec.enabled
    # the origin the proxy serves the console as still acts
    r = c.post(f"/console/apps/{iid}/disable", data={"csrf": csrf},
               headers={"Origin": PROXY_ORIGIN})
    assert r.status_code == 303, r.text
