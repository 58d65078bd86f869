"""`policy add` refuses exactly what the host's loader refuses (review finding: it read the
folder's other files itself, following symlinks, replacing bad UTF-8 and ignoring the file cap,
so it said "added" while `load_policy(folder)` — policywatch, `policy reload` — kept the
previous revision; a folder named *.toml crashed it)."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

from policies.loader import MAX_FILES, PolicyLoadError, load_policy

NARROW = '''schema = 1
name = "narrow"
[[rule]]
id = "no-persistence-for-evil"
effect = "forbid"
apps = ["evil"]
actions = ["persistence"]
'''


def _non_utf8(folder: Path, tmp_path: Path) -> None:
    (folder / "extra.toml").write_bytes(b'schema = 1\nname = "x"\ndescription = "caf\xe9"\n')


def _symlink(folder: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.toml"
    real.write_text('schema = 1\nname = "elsewhere"\n')
    os.symlink(real, folder / "linked.toml")


def _too_many(folder: Path, tmp_path: Path) -> None:
    have = len(list(folder.glob("*.toml")))
    for i in range(MAX_FILES - have):  # the folder is full; the added file is one too many
        (folder / f"f{i:03}.toml").write_text(f'schema = 1\nname = "f{i}"\n')


def _dir_named_toml(folder: Path, tmp_path: Path) -> None:
    (folder / "dir.toml").mkdir()


@pytest.mark.parametrize("spoil", [_non_utf8, _symlink, _too_many, _dir_named_toml])
def test_add_refuses_what_the_loader_refuses(
        cli: Run, home: Path, tmp_path: Path, spoil: Callable[[Path, Path], None]) -> None:
    assert cli("init").exit_code == 0
    folder = home / "policies"
    spoil(folder, tmp_path)
    new = tmp_path / "narrow.toml"
    new.write_text(NARROW)
    # What the host would decide with the file copied in:
    (folder / "narrow.toml").write_text(NARROW)
    with pytest.raises(PolicyLoadError) as refused:
        load_policy(folder)
    (folder / "narrow.toml").unlink()
    assert any(f.code == "STK001" for f in refused.value.findings)
    r = cli("policy", "add", str(new), "--json")
    assert r.exit_code == 1, r.output
    assert "STK001" in r.stderr and "refused" in r.stderr, r.stderr
    assert json.loads(r.stdout)["added"] is False
    assert not (folder / "narrow.toml").exists()


def test_add_replacing_a_file_counts_it_once_under_the_cap(
        cli: Run, home: Path, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    folder = home / "policies"
    _too_many(folder, tmp_path)
    load_policy(folder)  # exactly MAX_FILES files load
    new = tmp_path / "f000.toml"
    new.write_text(NARROW)
    r = cli("policy", "add", str(new))
    assert r.exit_code == 0, r.output
    assert load_policy(folder).revision in r.stderr


def test_add_into_a_clean_folder_reports_the_hosts_revision(
        cli: Run, home: Path, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    new = tmp_path / "narrow.toml"
    new.write_text(NARROW)
    r = cli("policy", "add", str(new), "--dry-run")
    assert r.exit_code == 0 and not (home / "policies" / "narrow.toml").exists(), r.output
    r = cli("policy", "add", str(new))
    assert r.exit_code == 0, r.output
    assert load_policy(home / "policies").revision in r.stderr
