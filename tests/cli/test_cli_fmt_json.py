"""`policy fmt --diff/--list/--json`, `policy schema --json`, `sandbox exec --json`."""
from __future__ import annotations

import json
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

MESSY = 'name="t"\nschema=1\n'


def test_fmt_diff_and_list_write_nothing(cli: Run, tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(MESSY)
    d = cli("policy", "fmt", "--diff", str(f))
    assert d.exit_code == 1 and '-name="t"' in d.stdout and '+name = "t"' in d.stdout
    listed = cli("policy", "fmt", "--list", str(f))
    assert listed.exit_code == 0 and listed.stdout == f"{f}\n"
    assert f.read_text() == MESSY
    doc = json.loads(cli("policy", "fmt", "--json", str(f)).stdout)
    assert doc["files"][0]["written"] is True and doc["files"][0]["canonical"] is False
    assert f.read_text() != MESSY
    again = cli("policy", "fmt", "--diff", str(f))
    assert again.exit_code == 0 and again.stdout == ""


def test_schema_json(cli: Run) -> None:
    r = cli("policy", "schema", "--json")
    assert r.exit_code == 0 and "properties" in json.loads(r.stdout)


def test_sandbox_exec_json(cli: Run, tmp_path: Path) -> None:
    f = tmp_path / "s.py"
    f.write_text('print("hi")\n')
    r = cli("sandbox", "exec", str(f), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"exit_code": 0, "output": "hi\n", "message": ""}


def test_sandbox_exec_shows_the_snippets_escapes_inert(cli: Run, tmp_path: Path) -> None:
    """DESIGN rule 12: a snippet's printed ESC sequences reached the terminal raw (the screen
    cleared, the window's title set); shown as escapes now, lines and tabs kept, and exact in
    --json."""
    f = tmp_path / "s.py"
    f.write_text('print("\\x1b[2J\\x1b]0;pwned\\x07a\\tb\\u202ec")\nprint("next")\n')
    r = cli("sandbox", "exec", str(f))
    assert r.exit_code == 0, r.output
    assert r.stdout == "\\x1b[2J\\x1b]0;pwned\\x07a\tb\\u202ec\nnext\n"
    assert "\x1b" not in r.stdout and "\u202e" not in r.stdout
    exact = cli("sandbox", "exec", str(f), "--json")
    assert json.loads(exact.stdout)["output"] == "\x1b[2J\x1b]0;pwned\x07a\tb\u202ec\nnext\n"


def test_sandbox_exec_error_text_never_begins_a_line(cli: Run, tmp_path: Path) -> None:
    """A snippet's error message keeps its lines, but none at column 0: a line of the snippet's
    choosing read as the CLI's own ("error: ...") before."""
    f = tmp_path / "s.py"
    f.write_text('raise ValueError("bad\\nerror: forged host line\\x1b[2J")\n')
    r = cli("sandbox", "exec", str(f))
    assert r.exit_code == 1, r.output
    lines = r.stderr.splitlines()
    assert "  error: forged host line\\x1b[2J" in lines, lines
    assert not any(ln.startswith("error: forged") for ln in lines), lines
    assert json.loads(cli("sandbox", "exec", str(f), "--json").stdout)["message"].endswith(
        "bad\nerror: forged host line\x1b[2J")
