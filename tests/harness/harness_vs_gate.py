"""Run the same bridge calls through the author harness and through the host's real gate.

The gate side is `tests/gatehelp.py`'s rig (the production install, tokens, policy, ledger,
embedded server and the gate's own persistence calls; only the child is absent), on a home
holding the shipped default policy plus the test's. The harness side loads the same policy
folder with `use_policy`, or none. Each call's outcome is compared as the app would see it: the
result's shape, or the error's code and message.
"""
from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from apphelp import install
from gatehelp import GateRig, build_rig

from host.bridges.persistence import PersistenceStore, gate_store_calls
from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.keys.keyring import Keyring
from host.supervise.served import HostServed
from sandbox.errors import StockadeError
from sandbox.harness import AppHarness

Outcome = tuple[str, Any]
# Stores the helpers opened (closed by `close_all`, each test's fixture in this folder).
OPEN: list[PersistenceStore] = []
# A step: (action, args); a string value "$N.key" stands for field `key` of step N's result.
Step = tuple[str, dict[str, Any]]


def rig_and_harness(tmp_path: Path, app_dir: Path, policy: str, *,
                    grants: Iterable[str] | None = None,
                    use_policy: bool = True) -> tuple[GateRig, AppHarness]:
    home = Home(tmp_path / "home").ensure()
    (home.policies_dir / "test.toml").write_text(textwrap.dedent(policy))
    rec = install(home, app_dir, None if grants is None else list(grants))
    rig = build_rig(home, SystemClock(), rec.app_id)
    # The actions the host serves itself (persistence, as the running host wires them).
    served = HostServed(home.host_store, 10.0, rig.server._server, rig.installs,  # type: ignore[arg-type]
                        Keyring.open(home.keys_dir))
    served.gate = rig.gate
    rig.gate.host_actions.update(served.actions())
    rig.gate.store_calls = gate_store_calls()  # type: ignore[assignment]
    OPEN.append(served.persistence)
    h = AppHarness.from_dir(app_dir, grants=grants)
    if use_policy:
        h.use_policy(home.policies_dir)
    return rig, h


def _resolve(args: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    def one(v: Any) -> Any:
        if isinstance(v, str) and v.startswith("$"):
            n, _, key = v[1:].partition(".")
            got = results[int(n)]
            return got[key] if key else got
        return v
    return {k: one(v) for k, v in args.items()}


def run_steps(call: Callable[[str, dict[str, Any]], Any],
              steps: Iterable[Step]) -> list[Outcome]:
    results: list[Any] = []
    out: list[Outcome] = []
    for action, args in steps:
        try:
            got = call(action, _resolve(args, results))
        except (StockadeError, GateError) as exc:
            results.append(None)
            out.append((exc.code, exc.message))
            continue
        results.append(got)
        out.append(("ok", _shape(got)))
    return out


def _shape(result: Any) -> Any:
    """What two servers agree on: not ids or times, but which fields came back, and names."""
    if isinstance(result, dict):
        return sorted(result) if "username" not in result else ("user", result["username"])
    if isinstance(result, list):
        return ["list", len(result)]
    return result


def both(rig: GateRig, h: AppHarness, steps: list[Step]) -> tuple[list[Outcome], list[Outcome]]:
    """The outcomes of `steps` at the gate and in the harness."""
    gate = run_steps(lambda a, args: rig.gate.handle(rig.session, a, args), steps)
    harness = run_steps(lambda a, args: h.call(a, args), steps)
    return gate, harness


def close_all() -> None:
    while OPEN:
        OPEN.pop().close()
