"""The REST identity the operator named at consent (`--rest-as`) is used only while that consent
is the install's latest: a route run as another user re-checks the consent at the call, and an
older consent that named an identity, put back by whoever can write host.db after the operator
dropped it, is refused there too, not only at the watcher's next sync."""
from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app

from host.apps.installs import InstallStore
from host.apps.operations import apply_consent
from host.apps.packages import read_package
from host.apps.publisher import TrustStore, check_signature
from host.clock import SystemClock
from host.errors import GateError
from host.gate.gate import Session
from host.home import Home
from host.keys import tokens
from host.keys.keyring import Keyring
from host.server.embedded import EmbeddedServer
from host.server.personal_tokens import ensure_service_user
from host.server.principals import Caller
from host.supervise.restcall import rest_call

SRC = "from stockade import App\nclass TestApp(App):\n    pass\n"
PERMS = ["server.rest"]
ME = {"method": "GET", "route": "/api/v1/me", "body": None}


def _session(home: Home, keyring: Keyring, install_id: str) -> Session:
    with InstallStore(home.host_db) as store:
        rec = store.get(install_id)
        epoch = store.epoch()
    assert rec is not None
    sid = secrets.token_hex(8)
    clock = SystemClock()
    tok = tokens.issue(keyring, clock, app_id=rec.app_id, install_id=install_id,
                       session_id=sid, generation=rec.generation, epoch=epoch,
                       permissions=rec.grants, policy_hash="x", ttl_s=600.0)
    claims = tokens.verify(tok, keyring, clock, session_id=sid)
    return Session(app_id=rec.app_id, install_id=install_id, session_id=sid, claims=claims,
                   grants=rec.grants, caller=Caller(rec.app_id, install_id, rec.app_user_id))


def test_an_older_consent_naming_an_identity_put_back_is_refused_at_the_call(
        tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    server = EmbeddedServer(home.server_db, SystemClock())
    ensure_service_user(server, "svc")
    folder = write_app(tmp_path / "apps", "caller", PERMS, [], SRC)
    rec = install(home, folder)
    pkg = read_package(folder)
    sig = check_signature(pkg, TrustStore(home.trust_dir))
    keyring = Keyring.open(home.keys_dir)

    def me(facts: dict[str, Any]) -> Any:
        with InstallStore(home.host_db) as store:
            return rest_call(server, store, keyring, _session(home, keyring, rec.install_id),
                             dict(ME), None, facts)

    with InstallStore(home.host_db) as store:  # the operator names svc, then drops it
        apply_consent(home, store, store.get(rec.install_id), pkg, sig,  # type: ignore[arg-type]
                      frozenset(PERMS), kind="regrant", policy_revision=None, diff=None,
                      before=frozenset(PERMS), rest_as="svc")
        named = store.get(rec.install_id)
        assert named is not None and named.rest_as == "svc"
        assert me({"rest_as": "svc"})["body"]["username"] == "svc"
        apply_consent(home, store, named, pkg, sig, frozenset(PERMS), kind="regrant",
                      policy_revision=None, diff=None, before=frozenset(PERMS), rest_as=None)
    with sqlite3.connect(home.host_db) as db:  # whoever can write host.db puts it back
        db.execute("UPDATE install_installs SET consent_id = ? WHERE install_id = ?",
                   (named.consent_id, rec.install_id))
    with InstallStore(home.host_db) as store:
        back = store.get(rec.install_id)
        assert back is not None and back.rest_as == "svc"
    with pytest.raises(GateError, match="not the one the operator consented to"):
        me({"rest_as": "svc"})
