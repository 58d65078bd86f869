"""A policy set's username patterns are compiled within one budget (`MAX_SET_PROGRAM` RE2
instructions in all, `policies/pattern.py`), so no set of files can make a load take minutes or
gigabytes (DESIGN rule 13).

Each pattern was bounded on its own (512 characters, a 1 MiB RE2 program) and nothing bounded
them together: a 256 KiB file of 1,652 distinct patterns near that cap took 67 s and 880 MiB to
load (a serving host's reload, `policy check`, `policy add`), and a folder holds 256 files. Past
the budget a pattern is refused without being compiled (STK022), and `compile_policy` (which
`policy diff` runs on a NEW set the host would refuse) stops compiling there too."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from policies.loader import load
from policies.pattern import FAILED_COST, MAX_SET_PROGRAM, compile_pattern
from policies.policy import compile_policy

# Near the per-pattern cap: about 66,900 RE2 instructions and 20 ms to compile each.
HEAVY = r"[\p{L}\p{N}\p{M}]{1,24}[\p{L}\p{N}]{1,24}"
# Just past it: RE2 refuses it, after milliseconds of trying.
REFUSED = r"[\p{L}\p{N}\p{M}]{1,25}[\p{L}\p{N}]{1,25}"


def _file(patterns: list[str]) -> str:
    rules = "".join(
        f'[[rule]]\nid = "r{i}"\neffect = "forbid"\napps = ["crm"]\nactions = ["users.create"]\n'
        f"[rule.when]\nusername_pattern = '{p}'\n" for i, p in enumerate(patterns))
    return 'schema = 1\nname = "many"\n' + rules


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every pattern handed to RE2's compiler."""
    import re2  # type: ignore[import-untyped]

    seen: list[str] = []
    real = re2.compile

    def counting(text: str, *a: object, **kw: object) -> object:
        seen.append(text)
        return real(text, *a, **kw)

    monkeypatch.setattr(re2, "compile", counting)
    yield seen


def test_many_heavy_patterns_are_refused_within_the_budget(tmp_path, compiles) -> None:  # type: ignore[no-untyped-def]
    one = compile_pattern(HEAVY + "x").programsize
    fit = MAX_SET_PROGRAM // one
    heavy = [f"{HEAVY}x{i}" for i in range(fit + 40)]
    (tmp_path / "many.toml").write_text(_file(heavy))
    compiles.clear()
    res = load([tmp_path])
    assert res.policy is None
    over = [f for f in res.findings if f.code == "STK022"]
    assert 40 <= len(over) <= 41 and all("budget" in f.message for f in over)
    # each distinct pattern reached RE2 at most once, and none past the budget
    assert len(compiles) == len(set(compiles)) <= fit + 1


def test_refused_patterns_spend_the_budget_too(tmp_path, compiles) -> None:  # type: ignore[no-untyped-def]
    refused = [f"{REFUSED}x{i}" for i in range(200)]
    (tmp_path / "many.toml").write_text(_file(refused))
    compiles.clear()
    res = load([tmp_path])
    assert res.policy is None
    assert len(compiles) <= MAX_SET_PROGRAM // FAILED_COST + 1


def test_a_set_the_host_refuses_compiles_within_the_budget_too(compiles) -> None:  # type: ignore[no-untyped-def]
    from policies.loader import parse_text

    one = compile_pattern(HEAVY + "x").programsize
    fit = MAX_SET_PROGRAM // one
    src, errs = parse_text(_file([f"{HEAVY}y{i}" for i in range(fit + 40)]), "many.toml")
    assert src.model is not None, errs
    compiles.clear()
    pol = compile_policy([("many.toml", src.model)])
    assert len(compiles) <= fit + 1
    # what was not compiled is a pattern that never matches: a forbid then forbids every name
    assert sum(r.pattern_invalid for r in pol.rules) >= 40


def test_real_patterns_fit_by_the_thousand(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for half in (0, 1):  # two files: one holds about 1,500 rules
        real = [f"^app{half}-{i}-[a-z0-9-]{{1,40}}$" for i in range(1000)]
        (tmp_path / f"many{half}.toml").write_text(_file(real).replace('id = "r', f'id = "h{half}r'))
    res = load([tmp_path])
    assert not [f for f in res.findings if f.code == "STK022"]
    assert res.policy is not None
