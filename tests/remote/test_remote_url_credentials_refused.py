"""A workspace URL holding a user name and password (`https://svc:PASSWORD@chat.example`, a
proxy's basic auth) is refused, by `rocketchat connect` and whenever the home is opened. The
URL is no secret: `connect` wrote it whole into the audit chain's `operator.rocketchat_connect`
record and printed it, and the client named it in every unavailability error, which reaches
each app as its calls' refusal ("Rocket.Chat at https://svc:PASSWORD@… refused the
connection"), so a hostile app read the password off a workspace outage."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from host.cli.main import root
from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import open_readonly
from host.server.remote import config

PASSWORD = "pw-in-the-url-5f3a"  # what must show nowhere


@pytest.mark.parametrize("url", [f"https://svc:{PASSWORD}@chat.example.com",
                                 f"http://svc:{PASSWORD}@127.0.0.1:9",
                                 f"https://{PASSWORD}@chat.example.com/"])
def test_a_home_naming_a_url_with_credentials_is_refused(tmp_path, url: str) -> None:
    home = Home(tmp_path / "h").ensure()
    config.save(home, url, "svc", "tok")  # a file written by hand, or by an older host
    with pytest.raises(config.ConfigError) as refused:
        config.open_remote(home, SystemClock())
    assert "user name or password" in str(refused.value)
    assert PASSWORD not in str(refused.value)


def test_connect_refuses_it_and_records_no_password(tmp_path) -> None:
    root_dir = tmp_path / "h"
    Home(root_dir).ensure()
    r = CliRunner().invoke(root, ["--home", str(root_dir), "rocketchat", "connect", "--url",
                                  f"https://svc:{PASSWORD}@chat.example.com", "--user-id",
                                  "svc"], input="tok\n")
    assert r.exit_code == 2, r.output
    assert PASSWORD not in r.output
    assert not config.secret_path(Home(root_dir)).exists()  # the token was never stored
    db = Home(root_dir).host_db
    if db.exists():  # refused before anything was recorded: no store at all
        log = open_readonly(db, SystemClock())
        try:
            assert all(PASSWORD not in str(e.body) for e in log.tail(50))
        finally:
            log.close()
