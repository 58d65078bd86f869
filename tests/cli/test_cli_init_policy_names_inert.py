"""`init` on an existing home lists the policy files in its folder: their names are the policy
author's (a file dropped into the folder, or adopted from a bundle another host published), so
they reach the operator's screen inert (DESIGN rule 12).

Before: the names were joined into an f-string and printed as they were: a file named
"\\x1b]0;pwned\\x07\\x1b[2J.toml" retitled the terminal and cleared the screen on `init`.
"""
from __future__ import annotations

import json
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

EVIL = "\x1b]0;pwned\x07\x1b[2J\u202eFORGED"


def test_policy_file_names_are_listed_inert(cli: Run, home: Path) -> None:
    assert cli("init").exit_code == 0
    (home / "policies" / f"{EVIL}.toml").write_text("schema = 1\n")
    r = cli("init")
    assert r.exit_code == 0, r.output
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\u202eFORGED.toml" in r.stderr, r.stderr
    for ch in ("\x1b", "\x07", "\u202e"):
        assert ch not in r.output, repr(r.output)
    # --json keeps the exact name.
    assert f"{EVIL}.toml" in json.loads(cli("init", "--json").stdout)["policies"]
