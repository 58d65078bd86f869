"""An Origin (or Referer) that is no URL (an unclosed IPv6 bracket, a bracketed name) is a
cross-origin request, refused with a 403, never a 500: `urlsplit` raises on it, and the
console's origin check let the error out on the sign-in form (no session needed), every change
and every upload, with a traceback logged per request."""
from __future__ import annotations

import pytest
from conhelp import Served, signed_in


@pytest.mark.parametrize("header", ["Origin", "Referer"])
@pytest.mark.parametrize("value", ["http://[", "http://[::1", "http://a]b", "http://[zz]/x"])
def test_a_malformed_origin_is_refused_not_an_error(served: Served, header: str,
                                                    value: str) -> None:
    c = signed_in(served)
    r = c.post("/console/login", data={"username": "operator", "password": "x"},
               headers={header: value})
    assert r.status_code == 403, (r.status_code, r.text[:200])
    r = c.post("/console/apps/x/disable", data={"csrf": "x"}, headers={header: value})
    assert r.status_code == 403, (r.status_code, r.text[:200])
    r = c.post("/console/install", data={"csrf": "x"}, files={"package": ("a.zip", b"PK")},
               headers={header: value})
    assert r.status_code == 403, (r.status_code, r.text[:200])
