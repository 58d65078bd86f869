"""`stockade doctor`: layers read from a real confined child, store health, audit chain; a
tampered audit log makes it fail."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from apphelp import install, write_app

from host.home import Home
from host.runtime import Host

STOCKADE = str(Path(sys.executable).parent / "stockade")


def _doctor(home: Path) -> tuple[int, dict]:
    r = subprocess.run([STOCKADE, "--home", str(home), "doctor", "--json"], capture_output=True,
                       text=True, timeout=120)
    return r.returncode, json.loads(r.stdout)


def test_doctor_reports_layers_and_a_healthy_home(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(tmp_path / "apps", "docapp", ["livechat.read"], [],
                                  "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    assert rec.app_user_id is not None  # the app's own user exists from install on
    with Host(home):
        pass  # writes audit records
    code, report = _doctor(home.root)
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0 and report["ok"] is True
    for layer in ("seccomp", "landlock", "no_new_privs", "netns", "rlimits", "pdeathsig",
                  "empty_root"):
        assert checks[f"layer: {layer}"]["ok"] is True
    assert checks["audit chain"]["ok"] and checks["host store"]["ok"]


def test_doctor_fails_on_a_tampered_audit_log(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "docapp", ["livechat.read"], [],
                            "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    from host.ledger.audit import AuditRecord

    with Host(home) as h:
        for _ in range(3):
            h.ledger.append(AuditRecord(kind="lifecycle", app_id="docapp", event="enable"))
        h.ledger.checkpoint()
    assert _doctor(home.root)[0] == 0
    conn = sqlite3.connect(home.host_db)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE audit SET body = replace(body, 'docapp', 'evilapp')")
    conn.commit()
    conn.close()
    code, report = _doctor(home.root)
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 1 and checks["audit chain"]["ok"] is False


KERNEL_CHECKS = ("pid namespace", "ipc namespace", "net namespace", "own uid", "seccomp filter",
                 "no_new_privs", "empty root")


def test_doctor_reads_each_layer_from_the_kernel(tmp_path: Path) -> None:
    """Namespaces, uid and filter mode of the live child, read from /proc (not its report)."""
    _code, report = _doctor(Home(tmp_path / "home").ensure().root)
    checks = {c["name"]: c for c in report["checks"]}
    for name in KERNEL_CHECKS:
        assert checks[f"kernel: {name}"]["ok"] is True, checks.get(f"kernel: {name}")
        assert checks[f"kernel: {name}"]["required"] is True


def test_the_kernel_view_fails_a_process_without_the_layers() -> None:
    """What doctor would say of a child missing every layer: an unconfined process in this
    process's namespaces, running as the host, with no filter; doctor's report then fails."""
    from host import doctor

    proc = subprocess.Popen(["sleep", "30"])
    try:
        view = doctor.kernel_view(proc.pid, 0x7FFE0000 - 2)
    finally:
        proc.kill()
        proc.wait()
    assert {name: ok for name, (ok, _detail) in view.items()} == dict.fromkeys(
        KERNEL_CHECKS, False)
