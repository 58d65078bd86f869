"""Check that every fuzz target makes progress: a short atheris run grows its corpus.

A target whose code is not coverage-instrumented keeps one input however long it runs (libFuzzer
sees no new coverage, so it never saves anything). This runs each target for `--seconds` (60 by
default) into a fresh, empty corpus folder and fails unless the folder holds at least
`--min-new` inputs afterwards. Needs atheris (`pip install -e '.[fuzz]'`); see docs/FUZZING.md.

    .venv/bin/python tests/fuzz/corpus_growth.py            # every target, 60 s each
    .venv/bin/python tests/fuzz/corpus_growth.py --seconds 20 bridge_sequence
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ("frames", "tokens", "manifest", "policy", "bridge_sequence")
# Time a target may spend instrumenting and setting up before its run starts counting.
SETUP_GRACE_S = 120


def grow(name: str, seconds: int) -> int:
    """How many inputs a `seconds`-long run of target `name` saved into an empty corpus."""
    with tempfile.TemporaryDirectory(prefix=f"corpus-{name}-") as corpus:
        subprocess.run(
            [sys.executable, str(HERE / f"fuzz_{name}.py"), corpus,
             f"-max_total_time={seconds}", "-rss_limit_mb=4096", "-print_final_stats=0"],
            cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=seconds + SETUP_GRACE_S, check=True)
        return sum(1 for _ in Path(corpus).iterdir())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--min-new", type=int, default=10)
    args = ap.parse_args(argv)
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        ap.error(f"unknown target(s): {', '.join(unknown)}")
    bad = 0
    for name in args.targets or TARGETS:
        n = grow(name, args.seconds)
        ok = n >= args.min_new
        bad += not ok
        print(f"{name:16} {n:6} inputs in {args.seconds} s  {'ok' if ok else 'NO PROGRESS'}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
