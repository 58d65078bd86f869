"""`keys host-rotate` on a home with no host key makes one key, not two (review finding: it made
the first key, then rotated past it, leaving a key that never signed anything verifying until an
operator retired it)."""
from __future__ import annotations

import json
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures


def test_a_rotation_on_a_fresh_home_leaves_no_unused_key(cli: Run, home: Path) -> None:
    r = cli("keys", "host-rotate", "--json")
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    keys = json.loads(cli("keys", "host-list", "--json").stdout)["keys"]
    assert keys == [{"kid": made["current"], "current": True, "retired": False}], keys
    assert made["previous"] is None
    assert "the home had none" in r.stderr
    # The next rotation is a rotation: the first key verifies until retired.
    again = json.loads(cli("keys", "host-rotate", "--json").stdout)
    assert again["previous"] == made["current"] and again["current"] != made["current"]
