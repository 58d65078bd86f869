"""Names checked with a pattern end where the text ends: `$` in Python's `re` also matches
before a final line break, so `re.match(r"^name$", "name\\n")` passed. Each check below took
such a name before it used `fullmatch` (seen failing with `.match`); a line break in a trust
name, a module name or a policy file name lands in file names, prompts and logs."""
from __future__ import annotations

from pathlib import Path

import pytest

from host.apps.publisher import PublisherError, TrustStore
from host.apps.scaffold import ScaffoldError, scaffold
from sandbox.loader import LoadFailed, load_app

PUBLIC = "ed25519:" + "A" * 43 + "="


def test_a_trust_name_with_a_line_break_is_refused(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trust")
    with pytest.raises(PublisherError, match="trust name"):
        store.add("acme\n", PUBLIC)
    assert not (tmp_path / "trust").exists() or list((tmp_path / "trust").iterdir()) == []
    assert store.remove("acme\n") is False


def test_a_module_or_class_name_with_a_line_break_is_refused() -> None:
    src = "from stockade import App\nclass A(App):\n    pass\n"
    with pytest.raises(LoadFailed, match="invalid module name"):
        load_app({"app\n": src}, "app\n", "A")
    with pytest.raises(LoadFailed, match="invalid entry class name"):
        load_app({"app": src}, "app", "A\n")


def test_a_scaffolded_app_id_with_a_line_break_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="not a valid app id"):
        scaffold("my-app\n", tmp_path / "new")
    assert not (tmp_path / "new").exists()
