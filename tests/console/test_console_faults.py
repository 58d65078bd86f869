"""Every console page and action over a host store another process holds (`BEGIN EXCLUSIVE` on
host.db: a migration, a backup) and over a keyring that does not read. Each page waited the
store's 10 s busy wait on the front's event loop (every other request of the front, its REST
API too, waited with it) and then failed with a 500 and a traceback; a keyring that does not
read made enable and disable a 500. Each answers within a couple of seconds, holds no other
request, and says it cannot tell (a page) or that nothing was changed and what to do (a change):
a 503, never a 500. The quotas page answers as quickly, saying it cannot tell. (The pages that
already said so over a folder that does not load or a silent host: test_console_quota_policy_
truth.py, test_console_policy_host_silent.py; an upload and a confirm over a held store:
test_console_install_meanwhile.py.)"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from conhelp import Served, signed_in
from faulthelp import (
    ANSWER_S,
    OTHERS_WAIT_S,
    csrf_of,
    held_store,
    probe,
    unreadable_keyring,
)
from test_console_install_meanwhile import _confirm, _package, _upload

from host.apps.installs import InstallStore
from host.console.signin import MAX_FORM_BYTES

pytestmark = pytest.mark.usefixtures("short_store_wait")

PAGES = ["/console/apps", "/console/apps/IID/settings", "/console/apps/IID/uninstall",
         "/console/audit", "/console/audit/1", "/console/updates", "/console/updates/IID",
         "/console/quotas"]
ACTIONS = ["/console/apps/IID/enable", "/console/apps/IID/disable",
           "/console/apps/IID/settings", "/console/apps/IID/uninstall", "/console/updates",
           "/console/updates/IID/approve", "/console/updates/IID/reject"]


def _iid(served: Served) -> str:
    with InstallStore(served.home.host_store) as store:
        rec = store.by_app("agent-sync")
    assert rec is not None
    return rec.install_id


def _post(c: httpx.Client, served: Served, path: str) -> dict[str, Any]:
    csrf = csrf_of(c)
    data = {"csrf": csrf, "users": "keep", "agents": "keep", "confirm": "yes",
            "install_id": _iid(served)}
    kw: dict[str, Any] = {"data": data, "headers": {"Origin": served.url}}
    if path == "/console/updates":  # an upload form
        kw["files"] = {"package": ("a.zip", b"PK\x05\x06" + bytes(18))}
    return kw


@pytest.mark.parametrize("path", PAGES)
def test_a_page_over_a_held_store_says_cannot_tell_at_once(served: Served, path: str) -> None:
    c, path = signed_in(served), path.replace("IID", _iid(served))
    with held_store(served.home):
        got = probe(c, "GET", path)
    assert got.response is not None, "no answer: the connection reset, or past 30 s"
    r = got.response
    assert got.took_s < ANSWER_S and got.others_wait_s < OTHERS_WAIT_S, (got.took_s,
                                                                         got.others_wait_s)
    assert r.status_code in (200, 503), (r.status_code, r.text[-400:])
    assert "cannot tell" in r.text and "store cannot be used now" in r.text, r.text[-400:]


@pytest.mark.parametrize("path", ACTIONS)
def test_a_change_over_a_held_store_is_a_503_that_says_so(served: Served, path: str) -> None:
    c, path = signed_in(served), path.replace("IID", _iid(served))
    kw = _post(c, served, path)
    with held_store(served.home):
        got = probe(c, "POST", path, **kw)
    assert got.response is not None, "no answer: the connection reset, or past 30 s"
    r = got.response
    assert got.took_s < ANSWER_S and got.others_wait_s < OTHERS_WAIT_S, (got.took_s,
                                                                         got.others_wait_s)
    assert r.status_code == 503 and "Retry-After" in r.headers, (r.status_code, r.text[-400:])
    assert "nothing was changed" in r.text and "store cannot be used now" in r.text, r.text
    with InstallStore(served.home.host_store) as store:  # still installed, still enabled
        rec = store.get(_iid(served))
    assert rec is not None and rec.enabled


@pytest.mark.parametrize("action", ["enable", "disable"])
def test_a_switch_over_a_keyring_that_does_not_read_is_a_503_naming_it(served: Served,
                                                                       action: str) -> None:
    c = signed_in(served)
    csrf = csrf_of(c)
    unreadable_keyring(served.home)
    r = c.post(f"/console/apps/{_iid(served)}/{action}", data={"csrf": csrf},
               headers={"Origin": served.url})
    assert r.status_code == 503, (r.status_code, r.text[-400:])  # was a 500
    assert "keyring does not read" in r.text, r.text


def test_an_oversized_confirm_form_is_refused_like_the_others(served: Served) -> None:
    c = signed_in(served)
    csrf = csrf_of(c)
    big = {"csrf": csrf, "upload": "x", "grant": ["g" * 1024] * (MAX_FORM_BYTES // 1024 + 1)}
    for path in ("/console/install/confirm", f"/console/apps/{_iid(served)}/settings"):
        r = c.post(path, data=big, headers={"Origin": served.url})
        assert r.status_code == 403, (path, r.status_code, r.text[-300:])  # confirm: was 400


def test_an_install_over_a_keyring_that_does_not_read_is_a_503_naming_it(
        served: Served, tmp_path: Path) -> None:
    """The confirm (which signs the consent) was a 500; it is a 503 naming the keyring, and
    nothing is installed. (The upload reads no keyring: its page is shown.)"""
    c = signed_in(served)
    data = _package(tmp_path, "keyring-app")
    page = _upload(c, served, data).text
    unreadable_keyring(served.home)
    for r in (_confirm(c, served, page),):
        error = re.search(r'id="error">(.*?)</p>', r.text, re.S)
        assert r.status_code == 503 and error is not None, (r.status_code, r.text[-400:])
        assert "keyring does not read" in error.group(1), error.group(1)
    with InstallStore(served.home.host_store) as store:
        assert store.by_app("keyring-app") is None


def test_an_install_over_a_held_store_answers_at_once(served: Served, tmp_path: Path) -> None:
    """It was a 503 too, but after the store's 10 s wait (off the event loop)."""
    c = signed_in(served)
    data = _package(tmp_path, "held-app")
    page = _upload(c, served, data).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    token = re.search(r'name="upload" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    with held_store(served.home):
        for got in (probe(c, "POST", "/console/install", data={"csrf": csrf},
                          files={"package": ("a.zip", data)}, headers={"Origin": served.url}),
                    probe(c, "POST", "/console/install/confirm",
                          data={"csrf": csrf, "upload": token, "grant": ["livechat.read"],
                                "allow_unsigned": "yes"}, headers={"Origin": served.url})):
            assert got.response is not None and got.response.status_code == 503
            assert got.took_s < ANSWER_S and got.others_wait_s < OTHERS_WAIT_S, got.took_s
