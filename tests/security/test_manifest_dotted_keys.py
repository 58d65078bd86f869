"""An app.toml whose dotted key nests past `policies.tomlkeys.MAX_KEY_DOTS` is refused before
tomllib reads it, by the host and by the author harness alike. tomllib's cost is quadratic in a
dotted key's parts: a 32 KB manifest of one `a.a.a… = 1` took 1 GiB and 2 s, about 4 GiB at the
64 KiB cap, at install (the console's upload too) from a hostile package."""
from __future__ import annotations

from pathlib import Path

import pytest

from host.apps.manifest import ManifestError, parse_manifest
from sandbox.harness import AppHarness, HarnessError

HEAD = 'id = "deep"\nname = "Deep"\nversion = "1.0.0"\nentry = "main:TestApp"\n'
DEEP = HEAD + "a" + ".a" * 4000 + " = 1\n"  # 8 KB: ~64 MiB and 0.15 s of tomllib before


def test_the_host_refuses_a_deep_dotted_key_before_parsing() -> None:
    with pytest.raises(ManifestError, match="line 5: a dotted key or table header nests deeper"):
        parse_manifest(DEEP.encode())


def test_a_dotted_key_within_the_bound_is_only_an_unknown_key() -> None:
    with pytest.raises(ManifestError, match="invalid"):
        parse_manifest((HEAD + "a.b.c = 1\n").encode())


def test_the_harness_refuses_it_as_the_host_does(tmp_path: Path) -> None:
    (tmp_path / "app.toml").write_text(DEEP)
    (tmp_path / "main.py").write_text("from stockade import App\n\nclass TestApp(App):\n    pass\n")
    with pytest.raises(HarnessError, match="nests deeper than 8 levels"):
        AppHarness.from_dir(tmp_path)
