"""A restart of the shared PostgreSQL store within the lease's grace stops no host for good.

The lease's sweep (every 2 s) found its connection broken and tried to reconnect at once; with
the server still down, that one failure lost the lease: every host stopped admitting calls and
`serve` exited, though each host's last beat was well inside its grace and it could re-take its
lock seconds later. Now a host whose store cannot be reached tries again at each sweep while its
beat is within the grace (admitting nothing new past its admission bound meanwhile), and loses
the lease only when the re-take is refused or the grace has passed.

A private cluster, since this test restarts it (`pghelp.Cluster`).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from pghelp import Cluster, admits, private_fixture, until  # noqa: F401 - a fixture

from host.home import Home
from host.keys.keyring import Keyring
from host.migrate import migrate
from host.runtime import Host, HostConfig


def test_two_hosts_ride_out_a_short_restart_of_their_store(tmp_path: Path,
                                                           private: Cluster) -> None:
    url = private.fresh_url()
    migrate(url)
    homes: list[Home] = []
    for name in ("a", "b"):
        root = tmp_path / name
        if homes:  # the second host shares the first's keys, trust and policies (SCALE.md)
            for part in ("keys", "trust", "policies"):
                shutil.copytree(homes[0].root / part, root / part)
        home = Home(root, url).ensure()
        Keyring.open(home.keys_dir)
        homes.append(home)
    hosts = [Host(h, config=HostConfig(watch=False, use_zygote=False)).start() for h in homes]
    try:
        private.restart(down_s=3.0)  # under the grace (4 sweeps of 2 s)
        for host in hosts:
            until(lambda host=host: admits(host), "the host to admit calls again", 20.0)
        for host in hosts:
            assert not host.lease_lost.is_set(), host.lease_lost_why
    finally:
        for host in hosts:
            host.stop()
