"""`policy add` gives a file in the policy folder only a plain name, the one a published bundle
may carry (`host.apps.published.plain_policy_name`).

Before, any name ending in .toml without a "/" was taken: `--name` (or the file's own name, as
an author shipped it) with an escape sequence, a bell or a line break was written into the
folder, printed raw on the operator's terminal ("added …" cleared the screen and retitled the
window) and carried into the audit record; and on a shared store every other host refuses a
bundle holding such a name, so they kept the old policy while this host decided with the new."""
from __future__ import annotations

from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

from host.apps.published import plain_policy_name

GOOD = 'schema = 1\nname = "z"\n'
ODD = ["a\x1b]0;owned\x07\x1b[2J.toml", "two\nlines.toml", "with space.toml",
       "caf\u00e9.toml", "bidi\u202e.toml", "-dash.toml", ".hidden.toml", "x.cases.toml"]


@pytest.mark.parametrize("name", ODD)
def test_an_odd_name_is_refused_and_never_printed_raw(cli: Run, home: Path, tmp_path: Path,
                                                      name: str) -> None:
    assert cli("init").exit_code == 0
    before = sorted(p.name for p in (home / "policies").iterdir())
    src = tmp_path / "z.toml"
    src.write_text(GOOD)
    r = cli("policy", "add", str(src), "--name", name)
    assert r.exit_code == 2, r.stdout
    assert sorted(p.name for p in (home / "policies").iterdir()) == before
    for ch in ("\x1b", "\x07", "\u202e"):
        assert ch not in r.stdout
    assert not plain_policy_name(name) or name.endswith(".cases.toml")


def test_the_files_own_odd_name_is_refused_too(cli: Run, home: Path, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    src = tmp_path / "crm\x1b[2J.toml"
    src.write_text(GOOD)
    r = cli("policy", "add", str(src))
    assert r.exit_code == 2 and "\x1b" not in r.stdout
    assert not (home / "policies" / src.name).exists()


def test_a_plain_name_is_added(cli: Run, home: Path, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    src = tmp_path / "whatever.toml"
    src.write_text(GOOD)
    assert cli("policy", "add", str(src), "--name", "Crm_2.v1-x.toml").exit_code == 0
    assert (home / "policies" / "Crm_2.v1-x.toml").read_text() == GOOD
