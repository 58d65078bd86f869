"""The author harness applies the operator's real policy files: an author's test fails where the
host would refuse (a call no rule permits, a full quota, a seat ceiling), and passes where the
host would allow. Run as an author would: `stockade app new`, then pytest on the app folder."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

AUTHOR_TESTS = '''
from pathlib import Path

import pytest

from sandbox.errors import PermissionDenied, QuotaExceeded
from sandbox.harness import AppHarness, HarnessError

APP_DIR = Path(__file__).resolve().parent.parent
POLICY = APP_DIR.parent / "greeter.policy.toml"


def greet(h):
    started = h.start_room(h.add_visitor(name="Ann")["id"])
    return h.fire("livechat.room_started", started)


def test_the_operator_rule_permits_the_greeting():
    h = AppHarness.from_dir(APP_DIR).use_policy(POLICY)
    greet(h)
    assert len(h.calls_to("messages.send")) == 1


def test_without_the_rule_the_host_would_refuse():
    h = AppHarness.from_dir(APP_DIR).use_policy(APP_DIR.parent / "nothing.toml")
    with pytest.raises(PermissionDenied, match=r"policy_denied"):
        greet(h)


def test_a_full_quota_refuses_the_second_greeting():
    h = AppHarness.from_dir(APP_DIR).use_policy(APP_DIR.parent / "quota.toml")
    greet(h)
    with pytest.raises(QuotaExceeded, match="quota one-greeting is full"):
        greet(h)


def test_a_policy_the_host_refuses_is_refused_here():
    with pytest.raises(HarnessError, match="STK010"):
        AppHarness.from_dir(APP_DIR).use_policy(APP_DIR.parent / "typo.toml")
'''


def test_author_tests_apply_the_real_policy(cli: Run, tmp_path: Path) -> None:
    app = tmp_path / "greeter"
    assert cli("app", "new", "greeter", "--dir", str(app)).exit_code == 0
    policy = (tmp_path / "greeter.policy.toml").read_text()
    # Only the reads: the event reaches the app (events follow the reads they amount to), and
    # no rule permits the greeting it sends.
    (tmp_path / "nothing.toml").write_text('schema = 1\nname = "nothing"\n[[rule]]\n'
                                           'id = "reads"\neffect = "permit"\n'
                                           'apps = ["greeter"]\nactions = ["livechat.read"]\n')
    (tmp_path / "quota.toml").write_text(policy + '\n[[quota]]\nid = "one-greeting"\n'
                                         'apps = ["greeter"]\naction = "messages.send"\n'
                                         'limit = 1\nwindow = "1h"\n')
    (tmp_path / "typo.toml").write_text(policy.replace('"messages.send"', '"messages.sned"'))
    (app / "tests" / "test_policy.py").write_text(AUTHOR_TESTS)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(app / "tests" / "test_policy.py")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 passed" in r.stdout
