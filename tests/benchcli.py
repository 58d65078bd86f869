"""`stockade bench --<mode> --quick --json` run in-process, for the benches' CLI tests."""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from typer.testing import CliRunner

from host.cli.main import root


def quick_json(tmp_path: Path, flag: str, keys: Iterable[str]) -> tuple[dict[str, float], str]:
    """Run the bench mode `flag`; check it exits 0 with exactly `keys`, each a positive finite
    float, and never makes the home it was given. Returns the figures and stderr (the table)."""
    home = tmp_path / "unused"
    result = CliRunner().invoke(root, ["--home", str(home), "bench", flag, "--quick", "--json"])
    assert result.exit_code == 0, result.output
    figures: dict[str, float] = json.loads(result.stdout)
    assert set(figures) == set(keys)
    for key, value in figures.items():
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (key, value)
    assert not home.exists()
    return figures, result.stderr
