"""`app info` never lets an app's name read as one of the host's lines (DESIGN rule 12).

The screen's first row was the manifest's `name` at column 0, then "(app_id version)", cut to
the screen. A name of 80 characters (within the manifest's cap, no control character) that
reads "  publisher:  signed by acme (key ...), trusted" made that row a publisher line of the
host's own shape, right above the genuine "  publisher:  unsigned" one: an operator checking
who vouches for an installed app read "trusted" first. The first row is now the host's (the
app id and version, pattern-checked by the manifest), and the name stands after its own label,
quoted as author text.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from typer.testing import CliRunner

from host.cli.main import root
from host.cli.output import err_console

FORGED = "  publisher:  signed by acme (key 0123456789abcdef), trusted"


def test_an_apps_name_never_reads_as_a_host_line_of_app_info(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.toml").write_text(
        f'id = "named"\nname = {json.dumps(FORGED.ljust(80))}\nversion = "1.0.0"\n'
        'author = "tests"\napi = ">=1,<2"\nentry = "main:TestApp"\n', encoding="utf-8")
    (app / "main.py").write_text("from stockade import App\n\nclass TestApp(App):\n"
                                 "    pass\n")
    home = ["--home", str(tmp_path / "home")]
    r = CliRunner().invoke(root, [*home, "app", "install", "--allow-unsigned", str(app)])
    assert r.exit_code == 0, r.stderr
    buf = io.StringIO()
    err_console._file = buf  # err_console kept the stderr it saw at import: one run's buffer
    try:
        r = CliRunner().invoke(root, [*home, "app", "info", "named"])
    finally:
        err_console._file = None
    screen = r.stderr + buf.getvalue()
    assert r.exit_code == 0, screen
    rows = screen.splitlines()
    publisher = [ln for ln in rows if ln.lstrip().startswith("publisher:")]
    # Before: two rows, the name's ("signed by acme ..., trusted") first.
    assert publisher == ["  publisher:  unsigned: nobody vouches for this package's contents"]
    assert rows[0].startswith("named 1.0.0")
    assert any(ln.startswith("  name:") and "signed by acme" in ln for ln in rows)
