"""Fuzz target: the policy parser, lint and compiler (`policies/loader.py`, `policies/lint.py`).

Documented outcomes: `parse_text` and `load_sources` never raise (problems are findings with
stable codes); `load_policy_text` raises only `PolicyLoadError`. Invariant: a policy that
compiles came with no error finding.

Run for an hour: `.venv/bin/python tests/fuzz/fuzz_policy.py -max_total_time=3600`.
"""
from __future__ import annotations

import sys

from policies.loader import PolicyLoadError, load_policy_text, load_sources, parse_text


def fuzz_one(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    src, findings = parse_text(text, "fuzz.toml")
    res = load_sources([src], findings)
    if res.policy is not None:
        assert not any(f.severity == "error" for f in res.findings)
    try:
        load_policy_text(text, "fuzz.toml")
    except PolicyLoadError:
        pass


if __name__ == "__main__":
    import atheris  # type: ignore[import-not-found]

    atheris.instrument_all()
    atheris.Setup(sys.argv, fuzz_one)
    atheris.Fuzz()
