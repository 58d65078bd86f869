"""The peer: Rocket.Chat's real Apps-Engine runtime, measured in the same bench run.

`../shared/anchors/apps-engine/` builds the engine (its Deno runtime and its Node-side
controller) from the npm registry into a folder (`setup.sh DIR`) and times one app bridge call
(`read.getUserReader().getById`) and a cold start (`run.sh DIR`). `stockade bench --peer DIR`
runs that right after Stockade's own figures, so the ratios compare two measurements taken on
the same machine minutes apart (absolute figures drift on a shared machine; ratios in one run
do not). Nothing here is needed for the product: without `--peer` these figures are absent and
the targets that use them are not evaluated.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

# Where the anchor's run script sits below the workplace's shared folder. The folder is found by
# walking up from this checkout (the main checkout and a worktree under wt/ sit at different
# depths), unless STOCKADE_PEER_ANCHOR or `--peer-anchor` names the anchor's folder outright.
ANCHOR_REL = Path("shared") / "anchors" / "apps-engine"
ANCHOR_ENV = "STOCKADE_PEER_ANCHOR"
# One peer run: a few thousand calls and a few cold starts; the anchor's own README says ~1 min.
PEER_TIMEOUT_S = 600.0

PEER_KEYS = ("peer_read_us_p50", "peer_cold_ms_p50")
# The peer's calls a run, quick or full. Its JIT takes about this many to settle: its read p50
# measured 249-251 µs after 500 calls and 206-207 µs after 2 000 or 8 000 (2026-12-05). A quick
# run with fewer calls flattered every ratio to the peer by a fifth; the calls cost ~1 s.
PEER_CALLS = 2000
# What the anchor's run.sh uses of a build that its setup.sh made (the engine, the harness it
# runs, Deno, the engine's node modules), and the programs it runs. Checked before Stockade is
# measured: a half-built folder found after the measurement threw 25-40 s away a pair.
BUILD_PARTS = ("engine", "harness/bench.js", "harness/floor.js", "deno/deno",
               "v159/node_modules")
TOOLS = ("bash", "node")


class PeerError(RuntimeError):
    """The peer could not be measured (not built, or its run failed)."""


def find_anchor_run(anchor_dir: Path | None = None, *, start: Path | None = None,
                    env: dict[str, str] | None = None) -> Path:
    """The anchor's run.sh: in `anchor_dir` if given, else in $STOCKADE_PEER_ANCHOR, else in
    the first `shared/anchors/apps-engine/` of this checkout's ancestors."""
    named = anchor_dir or (Path(v) if (v := (os.environ if env is None else env).get(
        ANCHOR_ENV)) else None)
    if named is not None:
        run = named / "run.sh"
        if not run.is_file():
            raise PeerError(f"{named} holds no anchor run.sh (the folder with the anchor's "
                            "setup.sh and run.sh)")
        return run
    here = (start or Path(__file__)).resolve()
    for parent in here.parents:
        run = parent / ANCHOR_REL / "run.sh"
        if run.is_file():
            return run
    raise PeerError(f"no {ANCHOR_REL}/run.sh above {here.parent}: name the anchor's folder "
                    f"with --peer-anchor DIR or {ANCHOR_ENV}")


def check_peer(build_dir: Path, run_script: Path) -> None:
    """Raise PeerError unless the anchor's `run_script` can measure the build in `build_dir`
    (every part `BUILD_PARTS` names, the programs `TOOLS` names on PATH)."""
    missing = [part for part in BUILD_PARTS if not (build_dir / part).exists()]
    if missing:
        what = "no Apps-Engine build" if len(missing) == len(BUILD_PARTS) else \
            f"an unfinished Apps-Engine build (no {', '.join(missing)})"
        raise PeerError(f"{build_dir} holds {what}: run "
                        f"`bash {run_script.parent / 'setup.sh'} {build_dir}` first (about a "
                        "minute, npm registry only)")
    if not run_script.is_file():
        raise PeerError(f"the anchor's run script {run_script} is missing")
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        raise PeerError(f"the peer needs {', '.join(absent)} on PATH, which it is not on")


def measure_peer(build_dir: Path, *, calls: int, cold: int,
                 run_script: Path | None = None) -> dict[str, float]:
    """Run the anchor once; {peer_read_us_p50, peer_cold_ms_p50}."""
    run_script = run_script or find_anchor_run()
    check_peer(build_dir, run_script)
    env = {**os.environ, "N": str(calls), "COLD": str(cold)}
    try:
        proc = subprocess.run(["bash", str(run_script), str(build_dir)], capture_output=True,
                              text=True, timeout=PEER_TIMEOUT_S, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PeerError(f"the peer did not finish in {PEER_TIMEOUT_S:.0f}s") from exc
    figures: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "rtt" in doc:
            figures["peer_read_us_p50"] = float(doc["rtt"]["p50_us"])
            figures["peer_cold_ms_p50"] = float(doc["cold_ms"]["first_answer_p50"])
    if len(figures) != len(PEER_KEYS):
        raise PeerError(f"the peer's run printed no figures (exit {proc.returncode}): "
                        f"{proc.stderr.strip()[-300:]}")
    return figures
