"""Every request to the workspace carries the service account's token (create users, assign
roles, mint sign-ins as any user), and every answer decides quotas, seats and which roles carry
power. A home connected to `http://` on another machine sent that token across the network
readable, and whoever sat on the path could answer for the workspace (`connect` and
`open_remote` took any http:// URL). Now: https://, loopback http://, or the operator's loudly
named `--insecure-plain-http` (kept in rocketchat.toml, and said in the audit record)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from rchelp import STOCKADE

from host.clock import SystemClock
from host.home import Home
from host.server.remote import config


@pytest.mark.parametrize("url", ["http://chat.example.com", "http://10.0.0.7:3000",
                                 "http://[2001:db8::1]/", "HTTP://chat.example.com"])
def test_plain_http_to_another_machine_is_refused(tmp_path: Path, url: str) -> None:
    home = Home(tmp_path / "h").ensure()
    config.save(home, url, "svc", "tok")  # a file written by hand, or by an older host
    with pytest.raises(config.ConfigError, match="plain http"):
        config.open_remote(home, SystemClock())


@pytest.mark.parametrize("url", ["https://chat.example.com", "http://127.0.0.1:3000",
                                 "http://localhost:3000", "http://[::1]:3000"])
def test_https_and_loopback_are_accepted(tmp_path: Path, url: str) -> None:
    home = Home(tmp_path / "h").ensure()
    config.save(home, url, "svc", "tok")
    config.open_remote(home, SystemClock()).close()


def test_the_operator_may_accept_plain_http_by_name(tmp_path: Path) -> None:
    home = Home(tmp_path / "h").ensure()
    config.save(home, "http://chat.example.com", "svc", "tok", insecure_plain_http=True)
    assert "insecure_plain_http = true" in config.config_path(home).read_text()
    config.open_remote(home, SystemClock()).close()


def test_connect_refuses_plain_http_without_the_flag(tmp_path: Path) -> None:
    home = tmp_path / "h"
    r = subprocess.run([STOCKADE, "--home", str(home), "rocketchat", "connect", "--url",
                        "http://chat.example.com", "--user-id", "svc"], input="tok\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "plain http" in r.stderr
    assert not (home / config.SECRET_NAME).exists()  # the token was never stored
    r = subprocess.run([STOCKADE, "--home", str(home), "rocketchat", "connect", "--url",
                        "http://chat.example.com", "--user-id", "svc", "--insecure-plain-http",
                        "--json"], input="tok\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    audit = subprocess.run([STOCKADE, "--home", str(home), "audit", "tail", "--json"],
                           capture_output=True, text=True, timeout=60)
    assert "plain http" in audit.stdout
