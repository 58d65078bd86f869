"""A console session is used only from the local account that signed it in.

The attack (review F1): the session cookie reaches every loopback port the operator's browser
visits (cookies are not separated by port; SameSite counts all ports of 127.0.0.1 as one
site), so another local user's server receives it and replays it from that user's own process
with any Origin header. Here the replay runs in a child process as another uid, over loopback:
reading a page, a change with the CSRF token, an X-Forwarded-For naming the operator's own
live connection, and signing the operator out are all refused; the operator's own requests
keep working.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from conhelp import Served, signed_in

from host.apps.installs import InstallStore
from host.console.peer import client_uid
from host.console.sessions import COOKIE

# nobody: an account that owns no process of the test, with no access to the home.
OTHER_UID = 65534



def _replay(host: str, port: int, cookie: str, csrf: str, iid: str,
            op_port: int) -> dict[str, list[object]]:
    """The other local user's client: one request per connection, the answers by name."""
    out: dict[str, list[object]] = {}

    def ask(name: str, method: str, path: str, body: str | None = None,
            extra: dict[str, str] | None = None) -> None:
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request(method, path, body=body, headers={
            "Cookie": f"{COOKIE}={cookie}", "Origin": f"http://{host}:{port}",
            "Content-Type": "application/x-www-form-urlencoded", **(extra or {})})
        r = c.getresponse()
        out[name] = [r.status, r.getheader("location")]
        c.close()

    ask("read", "GET", "/console/apps")
    ask("disable", "POST", f"/console/apps/{iid}/disable", f"csrf={csrf}")
    ask("forwarded", "POST", f"/console/apps/{iid}/disable", f"csrf={csrf}",
        {"X-Forwarded-For": f"127.0.0.1:{op_port}"})
    ask("logout", "POST", "/console/logout", f"csrf={csrf}")
    return out


def _as_other_user(fn: Callable[[], object]) -> object:
    """`fn()` in a forked child running as OTHER_UID (no exec: the venv's interpreter may not
    be readable by it), its JSON answer read back over a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(OTHER_UID)
            os.setuid(OTHER_UID)
            os.write(w, json.dumps(fn()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "the other user's client failed"
    return json.loads(data)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a child as another "
                                "uid")


@needs_root
def test_a_session_cookie_replayed_by_another_local_user_is_refused(served: Served) -> None:
    op = signed_in(served)
    page = op.get("/console/apps")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    iid = re.search(r'action="/console/apps/([^/]+)/disable"', page.text).group(1)  # type: ignore[union-attr]
    cookie = op.cookies[COOKIE]
    url = urlsplit(served.url)
    # A live connection of the operator's, which the replay names in X-Forwarded-For.
    live = socket.create_connection((url.hostname, url.port))
    try:
        got = _as_other_user(lambda: _replay(str(url.hostname), int(url.port or 0), cookie,
                                             csrf, iid, live.getsockname()[1]))
    finally:
        live.close()
    assert isinstance(got, dict)
    for name in ("read", "disable", "forwarded"):
        assert got[name] == [303, "/console/login"], (name, got)
    with InstallStore(served.home.host_db) as store:
        rec = store.get(iid)
    assert rec is not None and rec.enabled
    # The operator is still signed in (the replayed sign-out closed nothing), and acts.
    assert op.get("/console/apps").status_code == 200
    r = op.post(f"/console/apps/{iid}/disable", data={"csrf": csrf},
                headers={"Origin": served.url})
    assert r.status_code == 303 and r.headers["location"] == "/console/apps"
    with InstallStore(served.home.host_db) as store:
        rec = store.get(iid)
    assert rec is not None and not rec.enabled


def test_the_owner_of_a_loopback_client_is_read_from_the_kernel() -> None:
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as listener:
            listener.bind((addr, 0))
            listener.listen()
            with socket.socket(family) as client:
                client.connect(listener.getsockname()[:2])
                server, _ = listener.accept()
                with server:
                    ours, theirs = client.getsockname()[:2], listener.getsockname()[:2]
                    assert client_uid(ours, theirs) == os.geteuid()
                    # no such connection, or no address at all: unknown, never a user
                    assert client_uid((addr, 1), theirs) is None
                    assert client_uid(None, theirs) is None
                    assert client_uid(("testclient", 50000), theirs) is None


def test_a_session_is_not_opened_when_the_peer_cannot_be_read(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("host.console.signin.client_uid", lambda client, server: None)
    r = httpx.post(f"{served.url}/console/login",
                   data={"username": "operator", "password": "operator password"},
                   headers={"Origin": served.url})
    assert r.status_code == 403 and "set-cookie" not in r.headers
