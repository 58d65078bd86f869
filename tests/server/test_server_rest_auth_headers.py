"""The credential headers must say one thing: a request carrying `X-User-Id` or `X-Auth-Token`
twice is refused as unauthenticated, whichever copy is genuine, as Rocket.Chat refuses it (Node
joins repeated headers into one value, which names no token). Before, the first copy was read
and the second ignored, so what the server checked was not what a proxy or log in front of it
that reads the last copy saw. Header names are matched in any case, as HTTP says; a token in the
query string, a cookie or the body is no credential."""
from __future__ import annotations

import httpx
from test_server_rest import base_url, svc  # noqa: F401 - fixtures


def test_a_repeated_credential_header_is_refused_whichever_copy_is_genuine(
        base_url: str, svc: tuple[str, str]) -> None:  # noqa: F811
    uid, tok = svc
    good = {"X-User-Id": uid, "X-Auth-Token": tok}
    assert httpx.get(f"{base_url}/api/v1/me", headers=good).status_code == 200
    for repeated in good:
        other = {k: v for k, v in good.items() if k != repeated}
        for copies in ([good[repeated], "not-it"], ["not-it", good[repeated]]):
            headers = [*other.items(), *((repeated, c) for c in copies)]
            r = httpx.get(f"{base_url}/api/v1/me", headers=headers)
            assert r.status_code == 401, (repeated, copies, r.text)
    lower = {k.lower(): v for k, v in good.items()}
    assert httpx.get(f"{base_url}/api/v1/me", headers=lower).status_code == 200
    elsewhere = httpx.get(f"{base_url}/api/v1/me", params={"userId": uid, "authToken": tok,
                                                           **good},
                          cookies={"rc_uid": uid, "rc_token": tok})
    assert elsewhere.status_code == 401
