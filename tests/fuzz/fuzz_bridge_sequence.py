"""Fuzz target: a sequence of bridge calls through the real gate.

Invariants, checked after every call:
* no call whose permission was not granted reaches the server (the server records each action
  method that ran);
* successful `users.create` calls never exceed the quota in any window (exact sliding window,
  checked against the clock the test moves);
* the only error the gate raises is GateError (a refusal the app would see).

Input: 3 bytes per call — which call, which argument variant, how many seconds pass first.

Run for an hour: `.venv/bin/python tests/fuzz/fuzz_bridge_sequence.py -max_total_time=3600`.
"""
from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # gatehelp
# The repo ahead of tests/: run as a script (docs/FUZZING.md), `policies` was tests/policies
# (a namespace package found first), and the rig's home found no shipped default policy.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gatehelp import GRANTED, QUOTA_LIMIT, QUOTA_WINDOW_S, build_rig, install_fuzz_app

from host.clock import ManualClock
from host.errors import GateError
from host.home import Home
from policies.vocabulary import ACTIONS

ROLES = ["bot", "admin", "Admin", "аdmin", "livechat-agent", "bot\u200b"]
TYPES = ["bot", "user", "app"]


def _call(kind: int, variant: int, n: int) -> tuple[str, dict[str, Any]]:
    role = ROLES[variant % len(ROLES)]
    choices: list[tuple[str, dict[str, Any]]] = [
        ("users.create", {"username": f"fz-{n}-{variant}", "name": "F",
                          "type": TYPES[variant % len(TYPES)],
                          **({"roles": [role]} if variant % 4 == 0 else {})}),
        ("users.get_by_username", {"username": f"fz-{variant}"}),
        ("roles.assign", {"user_id": f"u{variant}", "role": role}),
        ("messages.send", {"room_id": "r1", "text": "x"}),  # asked, not granted
        ("users.deactivate", {"user_id": f"u{variant}"}),  # never asked
        ("livechat.get_room", {"room_id": f"r{variant}"}),
        ("http.request", {"method": "GET", "url": "http://example.com/"}),
        ("nonexistent.action", {}),
        ("users.create", {"username": "x", "name": "F", "type": "bot", "extra": 1}),
    ]
    return choices[kind % len(choices)]


class _Rig:
    rig: Any = None
    clock = ManualClock()
    last: ClassVar[dict[str, int]] = {"created": 0, "refused": 0, "reached": 0}  # tallies
    calls = 0


def _setup() -> Any:
    if _Rig.rig is None:
        root = Path(tempfile.mkdtemp(prefix="stockade-fuzz-gate-"))
        atexit.register(shutil.rmtree, root, True)  # each process's rig left it in /tmp
        home = Home(root / "home").ensure()
        install_fuzz_app(home)
        _Rig.rig = build_rig(home, _Rig.clock, kept=True)  # one rig for the whole process
    return _Rig.rig


def fuzz_one(data: bytes) -> None:
    rig = _setup()
    rig.server.reached.clear()
    created_at: list[float] = []
    refused = 0
    for i in range(0, len(data) - 2, 3):
        kind, variant, step = data[i], data[i + 1], data[i + 2]
        _Rig.clock.advance(float(step))
        _Rig.calls += 1  # usernames stay unique across inputs: a conflict is not a quota test
        action, args = _call(kind, variant, _Rig.calls)
        before = len(rig.server.reached)
        try:
            rig.gate.handle(rig.session, action, args)
            ok = True
        except GateError:
            ok = False
            refused += 1
        reached = rig.server.reached[before:]
        for method in reached:
            spec = ACTIONS.get(method.replace("_", ".", 1))
            assert spec is not None and spec.permission in GRANTED, (
                f"{method} reached the server without a grant")
        if ok and action == "users.create":
            now = _Rig.clock.now()
            created_at.append(now)
            recent = [t for t in created_at if t > now - QUOTA_WINDOW_S]
            assert len(recent) <= QUOTA_LIMIT, "quota exceeded inside one window"
    _Rig.last = {"created": len(created_at), "refused": refused,
                 "reached": len(rig.server.reached)}
    # a new fuzz input starts after the previous window has passed, so inputs are independent
    _Rig.clock.advance(QUOTA_WINDOW_S + 1)


SEEDS = [bytes([0, 3, 0] * 6), bytes([0, 3, 30] * 8), bytes(range(0, 60)), b"\x03\x00\x00\x04\x01\x00"]

if __name__ == "__main__":
    import atheris

    # Build the rig first: it imports the server, ledger and gate modules the calls run
    # through. `instrument_all` instruments only modules already loaded, so without this the
    # fuzzer sees no coverage, keeps one input and makes no progress however long it runs.
    _setup()
    atheris.instrument_all()
    atheris.Setup(sys.argv, fuzz_one)
    atheris.Fuzz()
