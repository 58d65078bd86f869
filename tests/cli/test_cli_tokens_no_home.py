"""`app tokens APP` only lists: on a mistyped --home it says the app is not found and makes no
home, as the README says of every read-only command (review finding: it created the home, its
folders and default policy, then said "no installed app")."""
from __future__ import annotations

from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)


def test_listing_tokens_on_a_mistyped_home_creates_nothing(cli: Run, home: Path) -> None:
    r = cli("app", "tokens", "greeter")
    assert r.exit_code == 2, r.output  # not found, as in every `app` command
    assert "no installed app" in r.output
    assert not home.exists()  # before: the home, its folders and default.toml were made
