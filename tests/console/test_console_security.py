"""The console's security, over real HTTP: a strict CSP on every page, no change without the
session's CSRF token from a same-origin page, only operators sign in, a session ends with the
operator's admin role, and author text renders inert (it cannot become markup, run script,
or imitate the host's own lines)."""
from __future__ import annotations

import re
from pathlib import Path

import httpx
from conhelp import PASSWORD, Served

from host.apps.installs import InstallStore
from host.server import SYSTEM


def _signed_in(s: Served, user: str = "operator") -> httpx.Client:
    c = httpx.Client(base_url=s.url, timeout=10, follow_redirects=False)
    r = c.post("/console/login", data={"username": user, "password": PASSWORD},
               headers={"Origin": s.url})
    assert r.status_code == 303 and r.headers["location"] == "/console/apps", r.text
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    return c


def _csrf(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m is not None
    return m.group(1)


def _enabled(s: Served, app_id: str) -> bool:
    store = InstallStore(s.home.host_db)
    try:
        rec = store.by_app(app_id)
        assert rec is not None
        return rec.enabled
    finally:
        store.close()


def test_every_page_carries_the_csp(served: Served) -> None:
    c = _signed_in(served)
    for path in ("/console/login", "/console/apps", "/console/audit",
                 "/console/static/console.css"):
        r = c.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert "script-src" not in csp  # no script source at all
        assert "<script" not in r.text.lower(), path  # and none in any page


def test_a_change_needs_the_csrf_token_and_the_same_origin(served: Served) -> None:
    c = _signed_in(served)
    page = c.get("/console/apps").text
    token = _csrf(page)
    iid = re.search(r'action="/console/apps/([^/]+)/disable"', page).group(1)  # type: ignore[union-attr]
    target = f"/console/apps/{iid}/disable"
    # no token, a wrong token, another origin, no origin at all, a cross-site fetch: refused
    for data, headers in (
        ({}, {"Origin": served.url}),
        ({"csrf": "forged"}, {"Origin": served.url}),
        ({"csrf": token}, {"Origin": "http://evil.example"}),
        ({"csrf": token}, {}),
        ({"csrf": token}, {"Origin": served.url, "Sec-Fetch-Site": "cross-site"}),
    ):
        r = c.post(target, data=data, headers=headers)
        assert r.status_code == 403, (data, headers)
    store = InstallStore(served.home.host_db)
    apps = {r.install_id: r.app_id for r in store.list()}
    store.close()
    assert _enabled(served, apps[iid])
    ok = c.post(target, data={"csrf": token}, headers={"Origin": served.url})
    assert ok.status_code == 303 and not _enabled(served, apps[iid])


def test_only_operators_sign_in_and_a_demoted_one_is_out(served: Served) -> None:
    c = httpx.Client(base_url=served.url, timeout=10)
    r = c.post("/console/login", data={"username": "agent007", "password": PASSWORD},
               headers={"Origin": served.url})
    assert r.status_code == 401 and "not an operator" in r.text
    r = c.post("/console/login", data={"username": "operator", "password": "wrong one"},
               headers={"Origin": served.url})
    assert r.status_code == 401
    op = _signed_in(served)
    assert op.get("/console/apps").status_code == 200
    uid = served.server.users_get_by_username(SYSTEM, "operator")["id"]
    served.server.roles_remove(SYSTEM, uid, "admin")
    out = op.get("/console/apps")
    assert out.status_code == 303 and out.headers["location"] == "/console/login"


def test_author_text_is_inert(served: Served) -> None:
    c = _signed_in(served)
    page = c.get("/console/apps").text
    assert "<script>alert(1)</script>" not in page and "<b>Signed" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\u200b" not in page and "\\u200b" in page  # the invisible shown, never hidden
    # the host's own trust line is nowhere to imitate: the name sits in its author column only
    row = re.search(r'<tr id="app-shady">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    assert 'class="author">&lt;b&gt;Signed by trusted publisher' in row


def test_enable_refuses_an_install_whose_consent_does_not_verify(served: Served) -> None:
    """As `app enable`: a grant written into host.db behind the host's back is not switched on
    from the console either."""
    import json
    import sqlite3

    c = _signed_in(served)
    page = c.get("/console/apps").text
    token = _csrf(page)
    iid = re.search(r'action="/console/apps/([^/]+)/disable"', page).group(1)  # type: ignore[union-attr]
    c.post(f"/console/apps/{iid}/disable", data={"csrf": token}, headers={"Origin": served.url})
    with sqlite3.connect(served.home.host_db) as db:
        db.execute("UPDATE install_installs SET grants = ? WHERE install_id = ?",
                   (json.dumps(["livechat.read", "users.create"]), iid))
    r = c.post(f"/console/apps/{iid}/enable", data={"csrf": token},
               headers={"Origin": served.url})
    assert r.status_code == 409 and "consent" in r.text
    store = InstallStore(served.home.host_db)
    rec = store.get(iid)
    store.close()
    assert rec is not None and not rec.enabled


def test_a_rebound_host_name_is_refused(served: Served) -> None:
    """DNS rebinding: another site's name pointed at 127.0.0.1 is not this console."""
    r = httpx.get(f"{served.url}/console/login", headers={"Host": "evil.example"})
    assert r.status_code == 400
    r = httpx.post(f"{served.url}/console/login", data={"username": "operator",
                                                        "password": PASSWORD},
                   headers={"Host": "evil.example", "Origin": "http://evil.example"})
    assert r.status_code == 400 and "set-cookie" not in r.headers
    # The refusal is an answer of the console's too: framed by another site or sniffed as
    # markup it must not be (it came without the page headers).
    assert "frame-ancestors 'none'" in r.headers.get("content-security-policy", "")
    assert r.headers.get("x-content-type-options") == "nosniff"


def test_an_address_is_answered_as_the_console_it_names(served: Served) -> None:
    """A page can rebind a name, never an address: the console served on another loopback
    address (`serve --host 127.0.0.2` prints that URL) answers it and lets its operator sign in
    (before, only 127.0.0.1, localhost and ::1 were answered: its own URL was a 400)."""
    port = served.url.rsplit(":", 1)[1]
    for host in (f"127.0.0.2:{port}", "[::1]", f"[::1]:{port}"):
        origin = f"http://{host}"
        r = httpx.post(f"{served.url}/console/login", data={"username": "operator",
                                                            "password": PASSWORD},
                       headers={"Host": host, "Origin": origin})
        assert r.status_code == 303 and "set-cookie" in r.headers, (host, r.status_code)
    for host in (f"127.0.0.1.evil.example:{port}", "[::1", "127.0.0.2:x"):
        assert httpx.get(f"{served.url}/console/login",
                         headers={"Host": host}).status_code == 400, host


def test_an_oversized_form_is_refused_unread(served: Served) -> None:
    r = httpx.post(f"{served.url}/console/login",
                   content=b"username=operator&password=" + b"x" * (70 * 1024),
                   headers={"Origin": served.url,
                            "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 403


def test_policy_file_names_are_inert(served: Served) -> None:
    (served.home.policies_dir / "a\u202etrusted.toml").write_text('schema = 1\nname = "x"\n')
    page = _signed_in(served).get("/console/policy").text
    assert "\u202e" not in page and "a\\u202etrusted.toml" in page


def test_a_manifests_setting_default_is_shown_inert_and_kept(served: Served, tmp_path: Path) -> None:
    from apphelp import install, write_app
    from conhelp import SRC

    settings = '\n[[setting]]\nkey = "greeting"\ntype = "string"\nlabel = "Greeting"\n' \
               'default = "hello \\u202eevil"\n'
    rec = install(served.home, write_app(tmp_path / "s", "greeter", ["livechat.read"], [], SRC,
                                         settings=settings))
    c = _signed_in(served)
    url = f"/console/apps/{rec.install_id}/settings"
    page = c.get(url).text
    assert "\u202e" not in page and "hello \\u202eevil" in page
    # the form posted as shown keeps the value (the escaped copy never becomes the value)
    fields = dict(re.findall(r'<input (?:type="hidden" )?name="([^"]+)"[^>]*?value="([^"]*)"',
                             page))
    fields.setdefault("setting-greeting", "")
    assert c.post(url, data=fields, headers={"Origin": served.url}).status_code == 303
    with InstallStore(served.home.host_db) as store:
        now = store.get(rec.install_id)
    assert now is not None and now.settings["greeting"] == "hello \u202eevil"


def test_the_publisher_line_shows_a_key_id_inert() -> None:
    """The template alone: whatever checks a package's key id before, the page relies on none."""
    from host.console.app import template_environment

    line = template_environment().get_template("_permissions.html").module.publisher_line
    kid = "\u202e\u2066" + "x" * 14
    for sig in ({"status": "unknown-publisher", "kid": kid, "publisher": None},
                {"status": "trusted", "kid": kid, "publisher": "acme"}):
        html = str(line({"signature": sig}))
        assert "\u202e" not in html and "\u2066" not in html and "\\u202e\\u2066" in html, html


def test_an_audit_sequence_past_the_stores_integers_is_not_found(served: Served) -> None:
    c = _signed_in(served)
    for seq in ("9" * 30, str(2**63), str(2**63 - 1)):
        assert c.get(f"/console/audit/{seq}").status_code == 404, seq


def test_a_non_ascii_csrf_token_is_refused_not_an_error(served: Served) -> None:
    c = _signed_in(served)
    page = c.get("/console/apps").text
    iid = re.search(r'action="/console/apps/([^/]+)/disable"', page).group(1)  # type: ignore[union-attr]
    forged = "\u00e9" * 43
    for url, files in ((f"/console/apps/{iid}/disable", None), ("/console/install/confirm", None),
                       ("/console/install", {"package": ("a.zip", b"PK")}),
                       ("/console/updates", {"package": ("a.zip", b"PK")})):
        r = c.post(url, data={"csrf": forged}, files=files, headers={"Origin": served.url})
        assert r.status_code == 403, (url, r.status_code)
    assert _enabled(served, "agent-sync") and _enabled(served, "shady")
