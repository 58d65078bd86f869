"""A dotted key too long for the schema is refused before `tomllib` reads the file.

`tomllib` keeps every prefix of a dotted key, so a key of n parts costs it about n*n/2 parts of
memory and time: a 16 KiB line `a.a.a…a = 1` took 258 MiB and 0.7 s, and a policy file at the
loader's 256 KiB cap would take tens of GiB, so a policy author's file killed a serving host at
its reload (and `policy check`, `add`, `fmt`, `test` alike). The loader and the cases reader now
refuse a key or table header nested past MAX_DEPTH (STK008) with a linear scan first."""
from __future__ import annotations

import tracemalloc

import pytest

from policies.cases import parse_cases
from policies.loader import MAX_DEPTH, parse_text

DEEP = {
    "key": "schema = 1\nname = \"x\"\n" + "a" + ".a" * 6000 + " = 1\n",
    "quoted-key": 'schema = 1\nname = "x"\n' + '"a"' + ' . "a"' * 4000 + " = 1\n",
    "header": "schema = 1\nname = \"x\"\n[" + "a." * 6000 + "a]\n",
    "inline-table": "schema = 1\nname = \"x\"\nt = { " + "a." * 6000 + "a = 1 }\n",
}


@pytest.fixture
def no_toml_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str) -> object:
        raise AssertionError("tomllib read a file with a key nested past MAX_DEPTH")

    monkeypatch.setattr("policies.loader.tomllib.loads", refuse)


@pytest.mark.parametrize("kind", sorted(DEEP))
def test_a_deep_dotted_key_never_reaches_the_parser(kind: str, no_toml_parse: None) -> None:
    src, findings = parse_text(DEEP[kind], "deep.toml")
    assert src.model is None
    assert [f.code for f in findings] == ["STK008"]
    assert findings[0].line == 3
    model, problems = parse_cases(DEEP[kind].replace('name = "x"\n', ""), "deep.cases.toml")
    assert model is None and [f.code for f in problems] == ["STK008"]


def test_the_refusal_costs_little_memory() -> None:
    tracemalloc.start()
    try:
        parse_text(DEEP["key"], "deep.toml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"{peak} bytes"  # tomllib itself took over 100 MiB


# A pattern of escaped dots in a multi-line string that starts with escaped quotes.
ESCAPED_DOTS = "\\\\.".join("abcdefghij")


def test_dots_in_strings_comments_and_numbers_are_not_keys() -> None:
    text = (
        'schema = 1\nname = "dots"\n'
        f'description = "{".".join("abcdefghijklmnop")}"\n'
        f"# {'.'.join('abcdefghijklmnop')}\n"
        '[[rule]]\nid = "r.1.2.3.4.5.6.7.8.9"\neffect = "permit"\napps = ["a.b.c.d.e.f.g.h.i.j"]\n'
        'actions = ["users.get"]\n'
        f"description = '''\n{'.'.join('abcdefghijklmnop')}\n'''\n"
        '[rule.when]\nusername_pattern = """\\"\\"\\"' + ESCAPED_DOTS + '"""\n'
    )
    src, findings = parse_text(text, "dots.toml")
    assert src.model is not None, findings
    limit = "schema = 1\nname = \"x\"\n" + ".".join(["a"] * MAX_DEPTH) + " = 1\n"
    assert all(f.code != "STK008" for f in parse_text(limit, "x.toml")[1])
