"""Each fuzz target runs briefly as an ordinary test (no atheris needed).

Per target: its seed inputs, a few thousand inputs from a seeded random generator (half pure
noise, half byte-level mutations of the seeds, the way a coverage fuzzer spends its time), and
hypothesis `st.binary()`. A target fails the test by raising anything outside its documented
error types or by breaking its invariant (an AssertionError). Long runs: docs/FUZZING.md.
"""
from __future__ import annotations

import ast
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import fuzz_bridge_sequence
import fuzz_frames
import fuzz_manifest
import fuzz_policy
import fuzz_tokens
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
SHIPPED_POLICY = (REPO / "policies" / "shipped" / "default.toml").read_bytes()

Target = Callable[[bytes], None]

TARGETS: dict[str, tuple[Target, list[bytes], int]] = {
    # name: (fuzz_one, seeds, random inputs)
    "frames": (fuzz_frames.fuzz_one, fuzz_frames.SEEDS, 3000),
    "tokens": (fuzz_tokens.fuzz_one,
               [b"\x00" + fuzz_tokens.GENUINE.encode(), b"\x01\x00\x10AAAA",
                b"\x02\x00\x30..."], 3000),
    "manifest": (fuzz_manifest.fuzz_one,
                 [b"\x00" + fuzz_manifest.VALID_MANIFEST,
                  b"\x01" + fuzz_manifest.VALID_MANIFEST + b"\0main.py\0class App: pass\n",
                  b"\x02PK\x05\x06" + b"\0" * 18], 2000),
    "policy": (fuzz_policy.fuzz_one, [SHIPPED_POLICY, b"schema = 1\n"], 1500),
    "bridge_sequence": (fuzz_bridge_sequence.fuzz_one, fuzz_bridge_sequence.SEEDS, 150),
}


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(4)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2 and data:
            del data[pos:pos + rng.randint(1, 16)]
        else:
            chunk = seed[rng.randrange(len(seed) + 1):][:rng.randint(1, 64)]
            data[pos:pos] = chunk
    return bytes(data)


def _inputs(name: str) -> Iterator[bytes]:
    _fn, seeds, count = TARGETS[name]
    rng = random.Random(f"stockade-fuzz-{name}")
    yield from seeds
    for i in range(count):
        if i % 2 == 0:
            yield bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        else:
            yield _mutate(rng, rng.choice(seeds))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeded_random_inputs(name: str) -> None:
    fn = TARGETS[name][0]
    n = 0
    for data in _inputs(name):
        fn(data)
        n += 1
    assert n >= TARGETS[name][2]


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_hypothesis_binary(name: str) -> None:
    fn = TARGETS[name][0]

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=2000))
    def run(data: bytes) -> None:
        fn(data)

    run()


def test_token_target_accepts_the_genuine_token() -> None:
    """Control: the target's invariant is reachable (a genuine token does verify)."""
    fuzz_tokens.fuzz_one(b"\x00" + fuzz_tokens.GENUINE.encode())
    from host.keys import tokens

    claims = tokens.verify(fuzz_tokens.GENUINE, fuzz_tokens.RING, fuzz_tokens.CLOCK,
                           session_id=fuzz_tokens.SID)
    assert claims == fuzz_tokens.GENUINE_CLAIMS


def test_policy_target_seed_compiles() -> None:
    """Control: the shipped policy compiles, so the fuzzer's seed reaches the compiler."""
    from policies.loader import load_policy_text

    assert load_policy_text(SHIPPED_POLICY.decode(), "default.toml") is not None


def test_manifest_target_seed_parses() -> None:
    from host.apps.manifest import parse_manifest

    assert parse_manifest(fuzz_manifest.VALID_MANIFEST).id == "fuzz-app"


def test_bridge_target_is_not_vacuous() -> None:
    """Six creates at one instant: exactly the quota's three reach the server, the rest are
    refused; ungranted and unknown calls are refused without reaching it."""
    fuzz_bridge_sequence.fuzz_one(bytes([0, 3, 0] * 6))
    assert fuzz_bridge_sequence._Rig.last == {"created": 3, "refused": 3, "reached": 3}
    fuzz_bridge_sequence.fuzz_one(bytes([3, 0, 0, 4, 0, 0, 7, 0, 0]))
    assert fuzz_bridge_sequence._Rig.last == {"created": 0, "refused": 3, "reached": 0}


def _main_block_calls(path: Path) -> list[str]:
    """The calls made in a target's `if __name__ == "__main__":` block, in order."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return [ast.unparse(c.func) for stmt in node.body for c in ast.walk(stmt)
                    if isinstance(c, ast.Call)]
    return []


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.glob("fuzz_*.py")),
                         ids=lambda p: p.stem)
def test_every_atheris_entry_point_is_coverage_instrumented(path: Path) -> None:
    """A target run without instrumentation keeps one input however long it runs (the
    long-run check is `tests/fuzz/corpus_growth.py`, docs/FUZZING.md). Each entry point must
    instrument the loaded code before it starts fuzzing, after loading what its calls reach."""
    calls = _main_block_calls(path)
    assert "atheris.instrument_all" in calls and "atheris.Fuzz" in calls, calls
    assert calls.index("atheris.instrument_all") < calls.index("atheris.Fuzz")
    module = __import__(path.stem)
    if hasattr(module, "_setup"):  # a lazily built rig: built before instrumenting
        assert "_setup" in calls[:calls.index("atheris.instrument_all")], calls
