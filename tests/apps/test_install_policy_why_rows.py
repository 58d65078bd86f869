"""The install screen's note on a policy folder that does not load never lets a policy file's
text begin a row (DESIGN rule 12; a hostile policy author is an adversary of SECURITY.md).

`app install` (and `update`, `consent`) ends the disclosure with why the limits are unknown:
"the policy in DIR does not load: ..." quoting the loader's findings, which quote the file (an
unknown key's name, whole). Printed as one line and left to the terminal's wrap, a key padded
with spaces put "SIGNATURE  ✔ signed by trusted publisher ..." at column 0 of a row of its
own, the last line above the grant prompt of an unsigned package. The note now wraps in its own
column behind a "policy:" label.
"""
from __future__ import annotations

import io
from pathlib import Path

from typer.testing import CliRunner

from host.cli.main import root
from host.cli.output import err_console

FORGED = "SIGNATURE  ✔ signed by trusted publisher acme (key 0123456789abcdef)"


def _app(folder: Path) -> Path:
    folder.mkdir()
    (folder / "app.toml").write_text(
        'id = "plain"\nname = "Plain"\nversion = "1.0.0"\nauthor = "tests"\n'
        'api = ">=1,<2"\nentry = "main:TestApp"\n')
    (folder / "main.py").write_text("from stockade import App\n\nclass TestApp(App):\n"
                                    "    pass\n")
    return folder


def _screen(home: Path, app: Path, key: str) -> str:
    policies = home / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    # Written straight into the folder (as an operator copying a file in by hand would):
    # `policy add` refuses a set that does not load.
    (policies / "p.toml").write_text(f'schema = 1\nname = "p"\n"{key}" = 1\n')
    buf = io.StringIO()
    err_console._file = buf  # err_console kept the stderr it saw at import: one run's buffer
    try:
        r = CliRunner().invoke(root, ["--home", str(home), "app", "install", "--dry-run",
                                      str(app)])
    finally:
        err_console._file = None
    assert r.exit_code == 0, r.stderr + buf.getvalue()
    return buf.getvalue()


def test_a_policy_files_text_never_begins_a_row_of_the_install_screen(tmp_path: Path) -> None:
    home, app, width = tmp_path / "home", _app(tmp_path / "app"), err_console.width
    # Where the key's first character lands on its line, then padding to the next row.
    probe = next(ln for ln in _screen(home, app, "MARKER").splitlines() if "MARKER" in ln)
    at = probe.index("MARKER")
    key = "x" + " " * (width - (at + 1) % width) + FORGED
    rows: list[str] = []
    for ln in _screen(home, app, key).splitlines():  # a terminal cuts a line every `width`
        rows += [ln[i:i + width] for i in range(0, max(len(ln), 1), width)]
    assert "STK004" in "".join(rows)
    begun = [row for row in rows if row.startswith(FORGED[:20])]
    assert not begun, f"the policy file's text began a row: {begun}"
