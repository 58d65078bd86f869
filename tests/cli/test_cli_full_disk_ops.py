"""Operator commands on a full disk, and a home left half-made by one: one clear refusal, and
nothing left that a later run takes for a good file (review findings: an empty default.toml a
later `init` called fine; "unexpected OperationalError: disk I/O error ... please report it")."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from host.home import Home, shipped_default_policy

STOCKADE = str(Path(sys.executable).parent / "stockade")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STOCKADE, *args], capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def _small_disk(where: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of `size` at `where` (root only; CI runs as root), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        with contextlib.suppress(OSError):
            while True:  # the last blocks, smaller than a page
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)
    return filler


def test_an_empty_default_policy_counts_as_missing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _run("--home", str(home), "init").returncode == 0
    default = Home(home).default_policy
    default.write_text("")  # what an earlier release's write left on a full disk
    r = _run("--home", str(home), "init")
    assert r.returncode == 0, r.stderr
    assert default.read_text() == shipped_default_policy()
    assert _run("--home", str(home), "policy", "reload").returncode == 0


def test_init_on_a_full_disk_leaves_no_empty_policy_and_a_later_init_completes(
        tmp_path: Path) -> None:
    with _small_disk(tmp_path / "fd", "256k") as disk:
        filler = _fill(disk)
        home = disk / "home"
        r = _run("--home", str(home), "init")
        assert r.returncode != 0 and "unexpected" not in r.stderr, r.stderr
        default = home / "policies" / "default.toml"
        assert not default.exists() or default.read_text() == shipped_default_policy()
        if home.exists():
            assert not list((home / "policies").glob(".*.tmp"))
        filler.unlink()
        r = _run("--home", str(home), "init")
        assert r.returncode == 0, r.stderr
        assert default.read_text() == shipped_default_policy()
        assert _run("--home", str(home), "policy", "reload").returncode == 0
        tail = _run("--home", str(home), "audit", "tail")
        assert "operator.init" in tail.stdout + tail.stderr, tail.stdout + tail.stderr


@pytest.mark.parametrize("cmd", [["keys", "host-rotate"], ["app", "list"]])
def test_a_store_that_cannot_open_on_a_full_disk_is_a_clear_refusal(
        tmp_path: Path, cmd: list[str]) -> None:
    with _small_disk(tmp_path / "fd") as disk:
        home = disk / "home"
        assert _run("--home", str(home), "init").returncode == 0
        _fill(disk)
        r = _run("--home", str(home), *cmd)
        assert r.returncode != 0
        assert "unexpected" not in r.stderr and "please report" not in r.stderr, r.stderr
        assert "disk full" in r.stderr or "full" in r.stderr, r.stderr


def test_serve_with_a_policy_that_does_not_load_names_the_findings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _run("--home", str(home), "init").returncode == 0
    (home / "policies" / "x.toml").write_text(
        'schema = 1\nname = "x"\n[[rule]]\nid = "default-persistence"\neffect = "permit"\n'
        'apps = ["*"]\nactions = ["persistence"]\n')
    r = subprocess.run([STOCKADE, "--home", str(home), "serve", "--port", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "unexpected" not in r.stderr and "please report" not in r.stderr, r.stderr
    assert "default-persistence" in r.stderr or "STK" in r.stderr, r.stderr
    assert "stockade policy check" in r.stderr, r.stderr
