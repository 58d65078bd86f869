"""A host in a process of its own, for the tests that kill it: `python statushost.py HOME
AHEAD_S` serves HOME with its wall clock AHEAD_S seconds ahead of the system's (0: as is; a
positive AHEAD_S is a host whose clock was then stepped back by that much), prints "up" once it
has published its apps' status, and serves until killed, publishing again every 0.2 s (the
upkeep does it every 2 s; the tests that read a live host's rows should not race its round)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host.clock import SystemClock
from host.home import Home
from host.runtime import Host
from host.supervise.status import read_status


class Ahead(SystemClock):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def now(self) -> float:
        return super().now() + self.seconds


def main() -> None:
    home = Home(Path(sys.argv[1]))
    host = Host(home, clock=Ahead(float(sys.argv[2]))).start()
    deadline = time.monotonic() + 30
    while not read_status(home.host_store) and time.monotonic() < deadline:
        host.publish_status()  # what the upkeep does every 2 s, now
        time.sleep(0.05)
    print("up", flush=True)
    while time.monotonic() < deadline + 600:
        host.publish_status()
        time.sleep(0.2)


if __name__ == "__main__":
    main()
