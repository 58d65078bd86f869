"""`match` is refused by Stockade's own compile step, not only by RestrictedPython's version.

A class pattern reads attributes with the real getattr and a mapping pattern reads items with
the real get, past every guard the sandbox installs. RestrictedPython 9 refuses the statement
because it has no checks for it yet; the dependency pin is a lower bound, so a release that
accepted it must not open the sandbox. The test stands in for such a release by making
RestrictedPython's transformer accept the node, then compiles and runs the escape.
"""
from __future__ import annotations

import ast

import pytest
from RestrictedPython.transformer import RestrictingNodeTransformer

from sandbox.restricted import CompileFailed, compile_module, make_globals, run_module

ESCAPES = [
    "match ():\n    case object(__class__=c):\n        ESCAPED = c\n",
    "def gen():\n    match me:\n"
    "        case object(gi_frame=object(f_back=object(f_globals={'types': m}))):\n"
    "            yield m\nme = gen()\nESCAPED = next(me)\n",
]


def _accept(self: RestrictingNodeTransformer, node: ast.AST) -> ast.AST:
    return self.node_contents_visit(node)


@pytest.mark.parametrize("source", ESCAPES, ids=["class_pattern", "frame_walk"])
def test_match_is_refused_even_by_a_restrictedpython_that_accepts_it(
        monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    for name in ("visit_Match", "visit_match_case", "visit_MatchClass", "visit_MatchAs",
                 "visit_MatchMapping", "visit_MatchValue", "visit_MatchSequence",
                 "visit_MatchSingleton", "visit_MatchStar", "visit_MatchOr"):
        monkeypatch.setattr(RestrictingNodeTransformer, name, _accept, raising=False)
    with pytest.raises(CompileFailed, match="match statements are not allowed"):
        code = compile_module(source, "app.py")
        glb = make_globals("app")
        run_module(code, glb)  # what such a release would have let run
        pytest.fail(f"escaped: {glb.get('ESCAPED')!r}")


def test_match_is_refused_by_the_shipped_restrictedpython() -> None:
    with pytest.raises(CompileFailed, match="match statements are not allowed"):
        compile_module(ESCAPES[0], "app.py")
