"""Errors, exit codes and signals: one not-found code, a busy port is a usage error, no
traceback for hostile input, Ctrl-C stops with 130 and one line, flags anywhere, and read-only
commands never create a home."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

from host.cli.main import normalize_argv

STOCKADE = str(Path(sys.executable).parent / "stockade")


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STOCKADE, *args], capture_output=True, text=True, timeout=timeout)


def test_home_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    f = tmp_path / "passwd"
    f.write_text("root:x:0:0\n")
    for cmd in (["app", "list"], ["doctor"], ["init"]):
        r = _run("--home", str(f), *cmd)
        assert r.returncode == 2, (cmd, r.stderr)
        assert "is not a folder" in r.stderr and "Traceback" not in r.stderr


def test_deeply_nested_manifest_is_one_line(tmp_path: Path, cli: Run) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.toml").write_text('id = "deep"\nx = ' + "[" * 5000 + "]" * 5000 + "\n")
    (app / "main.py").write_text("")
    r = cli("app", "package", str(app))
    assert r.exit_code == 2 and "nests values too deeply" in r.stderr
    r = cli("app", "install", str(app), "--allow-unsigned")
    assert r.exit_code == 2 and "nests values too deeply" in r.stderr


@pytest.mark.parametrize("cmd", [["app", "info", "nope"], ["app", "logs", "nope"],
                                 ["app", "settings", "nope"], ["app", "disable", "nope"],
                                 ["app", "uninstall", "nope"], ["keys", "untrust", "nope"]])
def test_not_found_is_exit_2_and_read_only_creates_nothing(cli: Run, home: Path,
                                                           cmd: list[str]) -> None:
    r = cli(*cmd)
    assert r.exit_code == 2, r.output
    assert "no " in r.stderr
    if cmd[0] == "app":
        assert not home.exists()


def test_audit_record_not_found_is_exit_2(cli: Run, tmp_path: Path) -> None:
    cli("init")
    cli("keys", "host-rotate")  # a recorded operator action, so the store exists
    r = cli("audit", "show", "99999")
    assert r.exit_code == 2, r.output


@pytest.mark.parametrize("cmd", [["app", "list"], ["keys", "host-list"], ["keys", "list"],
                                 ["doctor"], ["audit", "tail"], ["policy", "reload"]])
def test_read_only_commands_never_create_a_home(cli: Run, home: Path, cmd: list[str]) -> None:
    cli(*cmd)
    assert not home.exists(), cmd


def test_home_and_json_before_or_after_the_command(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert _run("--home", home, "init").returncode == 0
    for argv in (["app", "list", "--home", home, "--json"],
                 ["--json", "app", "list", "--home", home],
                 ["app", "--home", home, "list", "--json"],
                 [f"--home={home}", "--json", "app", "list"]):
        r = _run(*argv)
        assert r.returncode == 0, (argv, r.stderr)
        assert json.loads(r.stdout) == [], argv


def test_normalize_argv_keeps_everything_after_double_dash() -> None:
    assert normalize_argv(["sandbox", "exec", "--home", "h", "--", "--json"]) == \
        ["--home", "h", "sandbox", "exec", "--", "--json"]
    assert normalize_argv(["--json", "policy", "schema"]) == ["policy", "schema", "--json"]


def test_busy_port_is_a_usage_error_before_serving(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _run("--home", str(tmp_path / "home"), "serve", "--port", str(port))
    assert r.returncode == 2, r.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in r.stderr
    assert "stockade server:" not in r.stderr and "apps running" not in r.stderr
    assert "Traceback" not in r.stderr and "Errno" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("error:")]) == 1


def _interrupt(args: list[str], ready: str, tmp_path: Path) -> tuple[int, str]:
    """Start `stockade ARGS` in its own process group, wait for `ready` on stderr, then send
    SIGINT to the whole group, as a terminal's Ctrl-C does (the zygote and children too)."""
    err = tmp_path / "stderr.txt"
    with open(err, "w") as ef:
        p = subprocess.Popen([STOCKADE, *args], stdout=subprocess.DEVNULL, stderr=ef,
                             start_new_session=True)
        deadline = time.monotonic() + 60
        while ready not in err.read_text() and time.monotonic() < deadline:
            assert p.poll() is None, err.read_text()
            time.sleep(0.05)
        os.killpg(p.pid, signal.SIGINT)
        code = p.wait(timeout=60)
    return code, err.read_text()


@pytest.mark.parametrize(("args", "ready"), [
    (["serve", "--port", "0"], "stockade server:"),
    (["demo"], "Visitor"),
    (["bench", "--quick"], ""),  # prints nothing early: interrupted after 2 s
])
def test_ctrl_c_stops_cleanly_with_130(tmp_path: Path, args: list[str], ready: str) -> None:
    full = (["--home", str(tmp_path / "home")] if args[0] == "serve" else []) + args
    code, err = _interrupt(full, ready, tmp_path) if ready else _interrupt_after(full, tmp_path)
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.rstrip().endswith("interrupted: stopped")


def test_a_sigint_started_ignored_stays_ignored(tmp_path: Path) -> None:
    """`stockade serve &` in a script: the shell starts it with SIGINT ignored, and the
    terminal's Ctrl-C meant for the script's foreground reaches it too. It serves on."""
    err = tmp_path / "stderr.txt"
    with open(err, "w") as ef:
        p = subprocess.Popen([STOCKADE, "--home", str(tmp_path / "home"), "serve", "--port", "0"],
                             stdout=subprocess.DEVNULL, stderr=ef, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        try:
            deadline = time.monotonic() + 60
            while "stockade server:" not in err.read_text() and time.monotonic() < deadline:
                assert p.poll() is None, err.read_text()
                time.sleep(0.05)
            os.killpg(p.pid, signal.SIGINT)
            with pytest.raises(subprocess.TimeoutExpired):
                p.wait(timeout=1.5)
            os.killpg(p.pid, signal.SIGTERM)  # a service manager's stop: serve exits 0
            assert p.wait(timeout=60) == 0, err.read_text()
            assert "Traceback" not in err.read_text()
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)


def _interrupt_after(args: list[str], tmp_path: Path) -> tuple[int, str]:
    err = tmp_path / "stderr.txt"
    with open(err, "w") as ef:
        p = subprocess.Popen([STOCKADE, *args], stdout=subprocess.DEVNULL, stderr=ef,
                             start_new_session=True)
        time.sleep(2.0)
        assert p.poll() is None
        os.killpg(p.pid, signal.SIGINT)
        code = p.wait(timeout=60)
    return code, err.read_text()


# Runs the CLI with one more thread, which sends SIGINT to itself when a byte reaches the
# descriptor in argv[1]. A signal delivered to another thread does not interrupt the main
# thread's read(): the moment the race in host/cli/ask.py leaves a Ctrl-C in, made certain.
_CTRL_C_TO_ANOTHER_THREAD = """
import os, signal, sys, threading
fd = int(sys.argv.pop(1))
def relay():
    os.read(fd, 1)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
threading.Thread(target=relay, daemon=True).start()
from host.cli.entry import main
main()
"""


def _ctrl_c_at_the_consent_prompt(tmp_path: Path, *, another_thread: bool) -> tuple[int, bytes]:
    """`app install` on a terminal, Ctrl-C at its consent prompt (to its process group, or to
    a thread that is not the one waiting for the answer): its exit code and what it wrote
    after the prompt."""
    import pty
    import threading

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
    from apps_helpers import app_files, write_folder

    folder = write_folder(tmp_path / "src", app_files())
    home = tmp_path / "home"
    main_fd, sub_fd = pty.openpty()
    relay_r, relay_w = os.pipe()
    cli = ([sys.executable, "-c", _CTRL_C_TO_ANOTHER_THREAD, str(relay_r)] if another_thread
           else [STOCKADE])
    # faulthandler on: if the process ever hangs after the Ctrl-C, the SIGABRT below prints
    # every thread's stack into the failure.
    p = subprocess.Popen([*cli, "--home", str(home), "app", "install", str(folder),
                          "--allow-unsigned"], stdin=sub_fd, stdout=sub_fd, stderr=sub_fd,
                         start_new_session=True, pass_fds=(relay_r,),
                         env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    os.close(sub_fd)
    os.close(relay_r)
    # The terminal is read all along, so the process can never block writing to it.
    out: list[bytes] = []
    prompted = threading.Event()

    def read_all() -> None:
        while True:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            out.append(chunk)
            if b"Grant all" in b"".join(out):
                prompted.set()

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    try:
        assert prompted.wait(60), b"".join(out)[-500:]
        time.sleep(0.3)  # the prompt's text is out: let it reach its wait for the answer
        seen = len(b"".join(out))
        if another_thread:
            os.write(relay_w, b"!")
        else:
            os.killpg(p.pid, signal.SIGINT)
        try:
            code = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGABRT)
            p.wait(timeout=30)
            reader.join(5)
            pytest.fail(f"no exit 30 s after the Ctrl-C; its stacks:\n{b''.join(out)[seen:]!r}")
        reader.join(10)
    finally:
        os.close(relay_w)
        os.close(main_fd)
    return code, b"".join(out)[seen:]


@pytest.mark.parametrize("another_thread", [False, True], ids=["process-group", "other-thread"])
def test_ctrl_c_at_a_prompt(tmp_path: Path, another_thread: bool) -> None:
    """At a consent prompt on a terminal: 130 and one line, nothing installed. Also when the
    signal reaches a thread other than the one waiting for the answer (the prompt read with
    input() waited on for good: a lost Ctrl-C)."""
    code, rest = _ctrl_c_at_the_consent_prompt(tmp_path, another_thread=another_thread)
    assert code == 130, rest
    assert b"Traceback" not in rest and b"interrupted: stopped" in rest
    r = _run("--home", str(tmp_path / "home"), "app", "list", "--json")
    assert json.loads(r.stdout) == []


# Sends SIGINT to its own process when the CLI's import reaches typer: a Ctrl-C that lands while
# the CLI is still loading, at a certain moment instead of a lucky one. It starts with Python's
# own handler, as under a terminal: a suite started in the background by a non-interactive shell
# passes SIGINT ignored to every process it starts, and Python then installs none.
_CTRL_C_DURING_IMPORT = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as under a terminal (see below)

class CtrlCAtTyper:
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlCAtTyper())
sys.argv = ["stockade", "--help"]
from {module} import main
main()
"""


def test_ctrl_c_while_the_cli_is_still_loading() -> None:
    """The console script's entry catches a Ctrl-C during the CLI's imports (seconds on a loaded
    machine): 130 and one line, no KeyboardInterrupt traceback."""
    entry = subprocess.run([sys.executable, "-c", _CTRL_C_DURING_IMPORT.format(
        module="host.cli.entry")], capture_output=True, text=True, timeout=60)
    assert entry.returncode == 130, entry.stderr
    assert "Traceback" not in entry.stderr and "KeyboardInterrupt" not in entry.stderr
    assert entry.stderr.strip() == "interrupted: stopped"


def test_the_console_script_is_the_entry_that_catches_it() -> None:
    text = Path(STOCKADE).read_text()
    assert "host.cli.entry" in text, text
