"""`stockade policy fmt` shows a policy author's text inert (DESIGN rule 12).

Its --diff printed the file's lines raw and --list and "formatted" printed the file's name raw:
TOML lets a comment or a string hold C1 controls (U+009B is CSI to a terminal) and bidirectional
overrides, and a file name may hold anything but `/`, so a policy author's file could clear or
retitle the reviewer's terminal or reorder what it reads (`policy fmt --diff policies/*.toml`).
The exact text stays in `--json`."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from host.cli import output
from host.cli.main import root

runner = CliRunner()
# Bytes that act on a terminal or on the order of what it shows.
ACTIVE = ("\x1b", "\x07", "\u009b", "\u202e")
NAME = "crm\x1b]0;owned\x07\x1b[2J.toml"
TEXT = ('schema=1\nname="crm"\n# reviewed \u202e ylno daer\n'
        'description="safe \u009b2J\u202e"\n')


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buf = io.StringIO()
    monkeypatch.setattr(output.err_console, "_file", buf)
    return buf


def _fmt(tmp_path: Path, *flags: str) -> tuple[int, str]:
    path = tmp_path / NAME
    path.write_text(TEXT)
    # color=True: as on a terminal, where click keeps escape sequences it would strip in a pipe
    r = runner.invoke(root, ["--home", str(tmp_path / "home"), "policy", "fmt", *flags,
                             str(path)], color=True)
    return r.exit_code, r.stdout


@pytest.mark.parametrize("flag", ["--diff", "--list", "--write"])
def test_what_fmt_prints_of_a_policy_file_is_inert(tmp_path: Path, stderr: io.StringIO,
                                                   flag: str) -> None:
    code, out = _fmt(tmp_path, *([] if flag == "--write" else [flag]))
    shown = out + stderr.getvalue()
    assert code == (1 if flag == "--diff" else 0), shown
    assert "crm" in shown
    for ch in ACTIVE:
        assert ch not in shown, f"{flag} printed {ch!r} raw: {shown!r}"
    if flag == "--diff":
        assert "\\u202e ylno daer" in out and "safe \\x9b2J\\u202e" in out


def test_json_keeps_the_exact_text(tmp_path: Path) -> None:
    code, out = _fmt(tmp_path, "--diff", "--json")
    assert code == 1
    (doc,) = json.loads(out)["files"]
    assert doc["file"].endswith(NAME) and "\u202e ylno daer" in doc["diff"]
