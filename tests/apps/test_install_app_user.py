"""An install whose app user cannot be made installs nothing (review finding: half-installs).

`app install` used to save the install row and its consent before the app's own server user
`app.<id>` existed; when that user could not be made (the username taken) the CLI said the
install failed, yet the app was installed, enabled, its consent verifying, and `serve` then
exited on the same conflict, so no app on the host ran."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from apps_helpers import app_files, write_folder
from typer.testing import CliRunner

from host.apps.installs import InstallError, InstallStore
from host.apps.lineage import Lineage
from host.apps.operations import install_package
from host.apps.packages import package_folder, read_package
from host.apps.publisher import TrustStore, check_signature
from host.cli.main import root
from host.cli.output import err_console
from host.clock import SystemClock
from host.home import Home
from host.server import SYSTEM, EmbeddedServer, NotFound


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str,
                 crash: BaseException | None = None) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr
        self.crash = crash  # an exception the command let out (the CLI calls it unexpected)


@pytest.fixture
def env(tmp_path: Path, monkeypatch):
    home = tmp_path / "home"
    runner = CliRunner()

    def run(*args: str) -> Result:
        buf = io.StringIO()
        monkeypatch.setattr(err_console, "_file", buf)
        r = runner.invoke(root, ["--home", str(home), *args])
        crash = None if isinstance(r.exception, SystemExit | None) else r.exception
        return Result(r.exit_code, r.stdout, r.stderr + buf.getvalue(), crash)

    return home, run


def _pkg(tmp_path: Path) -> Path:
    folder = write_folder(tmp_path / "src", app_files(permissions=("livechat.read",)))
    out = tmp_path / "a.zip"
    out.write_bytes(package_folder(folder)[1])
    return out


def _squat(home: Path, username: str) -> str:
    """A user already holding the app's username: an app's, made before apps were refused
    such names (no app makes one now), written as such a server holds it. An operator's
    squat is the same to the install."""
    Home(home).ensure()
    server = EmbeddedServer(Home(home).server_store, SystemClock())
    try:
        with server.db.write() as c:
            c.execute("INSERT INTO users (id, type, username, username_cf, name, active,"
                      " created_by_app, app_id, created_at) VALUES (?, 'bot', ?, ?, 'squat',"
                      " 1, 'squatter', NULL, 0)", ("squatuser0000001", username,
                                                    username.casefold()))
        return "squatuser0000001"
    finally:
        server.close()


def _install(run, pkg: Path) -> Result:
    return run("app", "install", str(pkg), "--allow-unsigned", "--json",
               "--grant", "livechat.read")


def _tail(run) -> str:
    r = run("audit", "tail")
    return r.stdout + r.stderr


def _library_install(home: Path, pkg: Path):
    """The install as the console (and the demo) make it: `install_package` itself."""
    package = read_package(pkg)
    return install_package(Home(home).ensure(), package,
                           check_signature(package, TrustStore(Home(home).trust_dir)),
                           frozenset({"livechat.read"}), policy_revision=None)


def _nothing_installed(home: Path) -> None:
    with InstallStore(Home(home).host_store) as store:
        assert store.list() == [] and store.pending_hooks() == []
        assert store.store.conn().execute("SELECT count(*) FROM consent_records").fetchone()[0] \
            == 0


@pytest.mark.parametrize("taken", ["app.agent-sync", "APP.Agent-Sync"])
def test_an_install_whose_app_user_is_taken_installs_nothing(env, tmp_path, taken):
    """Attack: a user named `app.<id>` (any case) exists before the install. The install must
    fail and leave nothing installed, no consent, no binding of the id; the operator's outcome
    record says it failed; once the squatter is gone the same install (unsigned: no transfer
    needed, the id was never bound) succeeds and gets the app's own user."""
    home, run = env
    squat = _squat(home, taken)
    pkg = _pkg(tmp_path)
    with pytest.raises(InstallError, match=r"(?i)app\.agent-sync"):
        _library_install(home, pkg)
    _nothing_installed(home)
    lineage = Lineage(Home(home).host_store)
    try:
        assert lineage.bound("agent-sync") is None
    finally:
        lineage.close()
    tail = _tail(run)
    assert "operator.install" in tail and "operator.outcome  FAIL" in tail, tail
    assert run("audit", "verify").exit_code == 0

    # the CLI says so before the operator is asked to consent, and changes nothing either
    r = _install(run, pkg)
    assert r.exit_code != 0 and r.crash is None, (r.crash, r.stderr)
    assert taken in r.stderr and "remove that user" in r.stderr, r.stderr
    _nothing_installed(home)
    assert json.loads(run("app", "list", "--json").stdout) == []

    server = EmbeddedServer(Home(home).server_store, SystemClock())
    try:
        server.users_delete(SYSTEM, squat)
        r = _install(run, pkg)
        assert r.exit_code == 0, r.stderr
        doc = json.loads(r.stdout)["install"]
        user = server.users_get_by_username(SYSTEM, "app.agent-sync")
        assert user["type"] == "app" and user["app_id"] == "agent-sync"
        assert doc["app_user_id"] == user["id"]
    finally:
        server.close()


def test_an_install_records_its_app_user_with_the_row(env, tmp_path):
    """The install row is written with its app user's id in the same transaction: no reader
    ever sees an installed, enabled app without one on the embedded server."""
    home, run = env
    assert _install(run, _pkg(tmp_path)).exit_code == 0
    with InstallStore(Home(home).host_store) as store:
        [rec] = store.list()
    server = EmbeddedServer(Home(home).server_store, SystemClock())
    try:
        assert rec.app_user_id == server.users_get_by_username(SYSTEM, "app.agent-sync")["id"]
        with pytest.raises(NotFound):
            server.users_get_by_username(SYSTEM, "app.other")
    finally:
        server.close()


def test_a_username_taken_after_the_check_still_installs_nothing(env, tmp_path, monkeypatch):
    """The user taken between the install's check and the making of its user (a race): the
    install fails before its row or consent exist, with the operator's error."""
    from host.apps import operations

    home, run = env
    _squat(home, "app.agent-sync")
    monkeypatch.setattr(operations, "app_user_blocked", lambda *a: None)
    with pytest.raises(InstallError, match="reserved for the own user of app 'agent-sync'"):
        _library_install(home, _pkg(tmp_path))
    _nothing_installed(home)
    assert "operator.outcome  FAIL" in _tail(run)
