"""Hidden names in a policy folder are not policy files: what `ls` shows is what is loaded.

Emacs keeps a lock link `.#default.toml` beside a file it has open (a dangling symlink naming
the editing user and process). Before, every loader took it for a policy file and refused it as
a symlink, so while an operator had a policy open in an editor `policy add` was refused,
`policy check` of the folder failed and `doctor` said apps would not run. And a hidden file
holding a grant (`.extra.toml`) was loaded though a reviewer's `ls` does not show it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

from host.apps.published import folder_files, unpublishable
from host.home import Home, toml_files
from policies.loader import is_toml_name, load_policy

GOOD = 'schema = 1\nname = "z"\n'
# A rule only a hidden file would add: if the loader read it, the policy would name it.
HIDDEN = ('schema = 1\nname = "hidden"\n[[rule]]\nid = "hidden-grant"\neffect = "permit"\n'
          'apps = ["crm"]\nactions = ["messages.list"]\n')


def _plant(policies: Path) -> None:
    os.symlink("root@box.4242:1765000000", policies / ".#default.toml")  # Emacs' lock link
    (policies / ".extra.toml").write_text(HIDDEN)


def test_an_editors_lock_link_refuses_nothing(cli: Run, home: Path, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    _plant(home / "policies")
    assert cli("policy", "check", str(home / "policies")).exit_code == 0
    src = tmp_path / "z.toml"
    src.write_text(GOOD)
    r = cli("policy", "add", str(src))
    assert r.exit_code == 0, r.output
    assert (home / "policies" / "z.toml").read_text() == GOOD


def test_a_hidden_file_grants_nothing(home: Path, cli: Run) -> None:
    assert cli("init").exit_code == 0
    _plant(home / "policies")
    policy = load_policy(home / "policies")
    assert "hidden-grant" not in repr(policy)
    assert [p.name for p in toml_files(home / "policies")] == ["default.toml"]
    # a published bundle neither carries it nor names it unpublishable
    assert list(folder_files(home / "policies")) == ["default.toml"]
    assert unpublishable(home / "policies") == []
    assert Home(home).policies_dir == home / "policies"


@pytest.mark.parametrize("name", ["default.toml", ".#default.toml", ".x.toml", "a.cases.toml",
                                  ".#a.cases.toml", "notes.txt", "x.toml~"])
def test_the_host_and_the_loader_agree_on_what_a_policy_file_is(tmp_path: Path,
                                                                 name: str) -> None:
    (tmp_path / name).write_text(GOOD)
    assert (tmp_path / name in toml_files(tmp_path)) == is_toml_name(name)
