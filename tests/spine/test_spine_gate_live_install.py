"""The gate re-reads the install record whenever another process changed it, on the very next
call: a CLI `disable` or a global token revocation needs no restart and no watcher to bite.

The change is made by a separate Python process (as the CLI would), between two calls of the
same gate on the same thread, after that thread's own audit commits, which is the case the
gate's cheap change probe must not mistake for "nothing changed".
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gatehelp import build_rig, install_fuzz_app

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.server.principals import SYSTEM

ROOT = Path(__file__).resolve().parents[2]


def _in_other_process(home: Home, code: str) -> None:
    script = (
        "import sys\n"
        "from host.apps.installs import InstallStore\n"
        f"store = InstallStore({str(home.host_db)!r})\n"
        f"{code}\n"
        "store.close()\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)


@pytest.fixture()
def rig_and_user(tmp_path: Path) -> tuple[object, str]:
    home = Home(tmp_path / "home").ensure()
    install_fuzz_app(home)
    rig = build_rig(home, SystemClock())
    uid = rig.server.users_create(SYSTEM, "target", "T", "user")["id"]
    for _ in range(3):  # this thread's own commits (audit records) come first
        rig.gate.handle(rig.session, "users.get", {"user_id": uid})
    return rig, uid


def test_a_disable_from_another_process_refuses_the_next_call(rig_and_user) -> None:  # type: ignore[no-untyped-def]
    rig, uid = rig_and_user
    _in_other_process(rig.home, f"store.set_enabled({rig.install.install_id!r}, False, 'cli')")
    with pytest.raises(GateError) as err:
        rig.gate.handle(rig.session, "users.get", {"user_id": uid})
    assert err.value.code == "permission_denied" and "disabled" in err.value.message
    assert rig.session.revoked


def test_an_epoch_bump_from_another_process_revokes_every_token(rig_and_user) -> None:  # type: ignore[no-untyped-def]
    rig, uid = rig_and_user
    _in_other_process(rig.home, "store.bump_epoch()")
    with pytest.raises(GateError) as err:
        rig.gate.handle(rig.session, "users.get", {"user_id": uid})
    assert err.value.code == "permission_denied" and "epoch" in err.value.message
