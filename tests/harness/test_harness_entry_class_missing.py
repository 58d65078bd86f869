"""An `entry` naming a class main.py does not define is said so, in the harness as at packaging.

`entry = "main:Greter"` (for `Greeter`) failed the author's tests with "main.Greter is not a
subclass of stockade.App", which sends the author to the class's bases; `stockade app package`
said "entry class Greter is not defined at the top level of main.py". The loader (the harness's
and the confined child's) now says what is wrong: the name is not there.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from harness_helpers import write_app

from sandbox.harness import AppHarness
from sandbox.loader import LoadFailed

SOURCE = "from stockade import App\nclass Probe(App):\n    pass\nclass Other:\n    pass\n"


def _entry(tmp_path: Path, entry: str) -> Path:
    folder = write_app(tmp_path, source=SOURCE)
    toml = folder / "app.toml"
    toml.write_text(toml.read_text().replace('entry = "main:Probe"', f'entry = "{entry}"'))
    return folder


def test_a_class_main_does_not_define_is_named_as_missing(tmp_path: Path) -> None:
    with pytest.raises(LoadFailed, match=r"main\.py defines no top-level 'Prob'") as caught:
        AppHarness.from_dir(_entry(tmp_path, "main:Prob"))
    assert "subclass" not in str(caught.value)


def test_a_class_that_is_no_app_is_still_said_so(tmp_path: Path) -> None:
    with pytest.raises(LoadFailed, match=r"main\.Other is not a subclass of stockade\.App"):
        AppHarness.from_dir(_entry(tmp_path, "main:Other"))
