"""A module RestrictedPython refuses is named in the refusal, not only its line.

An app whose `helpers.py` held a syntax error failed to load with "compile failed: Line 1:
SyntaxError: ...": the author looked at line 1 of main.py, the module app.toml names, which was
fine. The loader (the harness's and the confined child's, whose message `app logs` shows) now
names the file the line is in.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from harness_helpers import write_app

from sandbox.harness import AppHarness
from sandbox.loader import LoadFailed

MAIN = "import helpers\nfrom stockade import App\nclass Probe(App):\n    pass\n"


@pytest.mark.parametrize("helpers", [
    "def broken(:\n    pass\n", "x = 1\n_hidden = 2\n",
    # source that parses but that the compiler refuses after RestrictedPython's pass: its
    # SyntaxError escaped compile_module, so the load failed as an app_error, not a compile
    # failure naming the file (found by a mutation fuzz of compile_module)
    "x = 1\nbreak\n", "return 1\n", "x = *a\n", "def f(a, a):\n    pass\n",
], ids=["syntax", "restricted", "break-outside-loop", "return-outside-function",
        "starred-assignment", "duplicate-argument"])
def test_the_module_that_does_not_compile_is_named(tmp_path: Path, helpers: str) -> None:
    folder = write_app(tmp_path, source=MAIN, extra_modules={"helpers": helpers})
    with pytest.raises(LoadFailed, match=r"compile failed: helpers\.py: Line \d"):
        AppHarness.from_dir(folder)


def test_source_restrictedpython_fails_on_is_a_compile_failure(tmp_path: Path) -> None:
    """`x = r[await a]`: RestrictedPython's transformer drops the refused `await` and then
    fails on the Subscript it left without a slice (AttributeError), which escaped
    compile_module as the app's own exception (found by a mutation fuzz of compile_module)."""
    folder = write_app(tmp_path, source=MAIN, extra_modules={"helpers": "x = r[await a]\n"})
    with pytest.raises(LoadFailed, match=r"compile failed: helpers\.py: "):
        AppHarness.from_dir(folder)
