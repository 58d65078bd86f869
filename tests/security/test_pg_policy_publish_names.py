"""A home on a shared store publishes only a folder every host will adopt: a policy file whose
name is not a plain NAME.toml (put there by `cp`: `my policy.toml`) is refused by each
follower (`host.apps.published` checks the names of a bundle), so `policy reload` published a
bundle no other host took up, said "published to every host", and the hosts decided with
different policies. It now refuses to publish, naming the file, and publishes nothing."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pghelp import stockade

from host.home import Home
from host.keys.keyring import Keyring
from host.migrate import migrate
from host.runtime import Host, HostConfig

SEATS = 'schema = 1\nname = "seats"\n[workspace]\nmax_active_app_users = 7\n'


@pytest.fixture
def two(tmp_path: Path, pg_url: str) -> Iterator[tuple[Home, Home, Host]]:
    migrate(pg_url)
    first = Home(tmp_path / "a", pg_url).ensure()
    Keyring.open(first.keys_dir)
    other = tmp_path / "b"
    for part in ("keys", "trust", "policies"):
        shutil.copytree(first.root / part, other / part)
    second = Home(other, pg_url).ensure()
    host = Host(second, config=HostConfig(watch=False, use_zygote=False)).start()
    yield first, second, host
    host.stop()


def test_a_folder_no_host_would_adopt_is_not_published(two: tuple[Home, Home, Host]) -> None:
    first, second, host = two
    (first.policies_dir / "my seats.toml").write_text(SEATS)  # cp, behind the CLI's back
    said = stockade(first, "policy", "reload")
    assert said.returncode != 0, said.stderr
    assert "my seats.toml" in said.stderr and "published to every host" not in said.stderr
    follower = host.policy_watch._sync
    assert follower is not None
    assert follower.adopt() is None  # nothing new in the store to adopt (or to refuse)
    assert not (second.policies_dir / "my seats.toml").exists()
    # renamed, it is published and adopted
    (first.policies_dir / "my seats.toml").rename(first.policies_dir / "seats.toml")
    said = stockade(first, "policy", "reload")
    assert said.returncode == 0 and "published to every host" in said.stderr, said.stderr
    follower.adopt()
    assert (second.policies_dir / "seats.toml").read_text() == SEATS
