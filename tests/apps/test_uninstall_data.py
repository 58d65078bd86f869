"""No stored row outlives an uninstall, whatever the app writes around it: through the gate's
one-transaction put and through the host's own put (the fallback path), on both stores."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app
from gatehelp import build_rig

from host.apps import operations
from host.apps.installs import InstallStore
from host.bridges.persistence import gate_store_calls
from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.keys.keyring import Keyring
from host.migrate import migrate
from host.store import open_store
from host.supervise.served import HostServed

SRC = "from stockade import App\n\nclass TestApp(App):\n    pass\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Home:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        migrate(url)
    h = Home(tmp_path / "home", url).ensure()
    install(h, write_app(tmp_path / "apps", "keeper", ["persistence"], [], SRC))
    return h


def _left(home: Home, install_id: str) -> tuple[int, int]:
    """(persist rows, persist_usage rows) still keyed to `install_id`."""
    c = open_store(home.host_store).conn()
    return (int(c.execute("SELECT count(*) FROM persist WHERE install_id=?",
                          (install_id,)).fetchone()[0]),
            int(c.execute("SELECT count(*) FROM persist_usage WHERE install_id=?",
                          (install_id,)).fetchone()[0]))


def test_writes_around_an_uninstall_leave_no_row(home: Home,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the data was deleted in one transaction and the install in the next, and the
    host's own put never asked whether the install was still there, so a put landing between
    the two (the gate's install check passed) and one landing after both (the fallback put)
    stayed, keyed to an install id never used again, with its `persist_usage` row."""
    rig = build_rig(home, SystemClock(), "keeper")
    served = HostServed(home.host_store, 5.0, rig.server,  # type: ignore[arg-type]
                        rig.installs, Keyring.open(home.keys_dir))
    rig.gate.host_actions = served.actions()
    rig.gate.store_calls = dict(gate_store_calls())
    iid = rig.session.install_id

    def gate_put(key: str) -> Any:
        return rig.gate.handle(rig.session, "persistence.put", {"key": key, "value": "v"})

    def host_put(key: str) -> Any:
        return served.actions()["persistence.put"](rig.session, {"key": key, "value": "v"},
                                                   None, {})

    gate_put("early")
    host_put("early-host")
    store = InstallStore(home.host_store)  # the operator's, as `app uninstall` opens it
    real_remove = store.remove
    after: dict[str, BaseException | None] = {}

    def racing_remove(*a: Any, **kw: Any) -> Any:
        gate_put("just-before")  # lands after every step of the uninstall before this one
        host_put("just-before-host")
        done = real_remove(*a, **kw)
        for name, put in (("gate", gate_put), ("host", host_put)):
            late: Callable[[str], Any] = put
            try:
                late(f"after-{name}")
                after[name] = None
            except GateError as exc:
                after[name] = exc
        return done

    monkeypatch.setattr(store, "remove", racing_remove)
    rec = store.get(iid)
    assert rec is not None
    _, said = operations.uninstall_app(home, store, rec, users="keep", agents="keep")
    assert _left(home, iid) == (0, 0)
    assert said == "removed 4 stored item(s)"  # early, early-host and the two just before
    for name, refusal in after.items():
        assert isinstance(refusal, GateError) and refusal.code == "permission_denied", name
    store.close()
