"""A manifest cannot bury the install screen under empty rows (DESIGN rules 12 and 13).

The manifest's caps count characters (`MAX_DESCRIPTION`, `MAX_REASON`) so that no field can
push the rest of the disclosure off the operator's screen. But the multi-line fields (the
description, each permission's reason) kept every line break: a description of 1,990 newlines
and a reason of 470 drew some 2,500 empty rows, so the SIGNATURE verdict, the title and the
rows of the permissions above the padded one (a high-risk `users.create`, its "policy does not
permit" note) were pages above the prompt that asks to grant them. Now a block keeps at most
`MAX_BLOCK_LINES` lines and never two blank ones in a row; a line break past that is shown as
its escape (`\\n`), so every character is still on the screen.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner

from host.cli.main import root
from host.cli.output import err_console

# Rows two multi-line blocks may still take with their kept line breaks (each at most
# `host.inert.MAX_BLOCK_LINES`: `test_a_block_keeps_at_most_its_lines_and_one_blank_in_a_row`).
KEPT_ROWS = 24


def _write(folder: Path, description: str, reason: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "app.toml").write_text(
        'id = "padded"\nname = "Padded"\nversion = "1.0.0"\nauthor = "tests"\n'
        'api = ">=1,<2"\nentry = "main:TestApp"\n'
        f'description = """{description}"""\n'
        '[[permission]]\nname = "users.create"\nreason = "Creates accounts for new agents."\n'
        f'[[permission]]\nname = "users.read"\nreason = """{reason}"""\n', encoding="utf-8")
    (folder / "main.py").write_text("from stockade import App\n\nclass TestApp(App):\n"
                                    "    pass\n")
    return folder


@contextmanager
def _captured() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    err_console._file = buf  # err_console kept the stderr it saw at import: one run's buffer
    try:
        yield buf
    finally:
        err_console._file = None


def _install_screen(tmp_path: Path, app: Path) -> str:
    with _captured() as buf:
        r = CliRunner().invoke(root, ["--home", str(tmp_path / "home"), "app", "install",
                                      "--dry-run", str(app)])
    assert r.exit_code == 0, r.stderr + buf.getvalue()
    return buf.getvalue()


def test_line_breaks_cannot_push_the_install_screen_pages_away(tmp_path: Path) -> None:
    padded = _install_screen(tmp_path, _write(
        tmp_path / "padded", "A helpful app." + "\n" * 1_960 + "end of description",
        "Reads users." + "\n" * 470 + "thanks")).splitlines()
    # The same manifest with a tab for each line break (shown as its escape, two characters):
    # a line break may cost no more of the screen than any other character shown escaped.
    tabbed = _install_screen(tmp_path, _write(
        tmp_path / "tabbed", "A helpful app." + "\t" * 1_960 + "end of description",
        "Reads users." + "\t" * 470 + "thanks")).splitlines()
    # Before: 2,454 rows (the tabbed one: 81), the SIGNATURE verdict and the
    # high-risk users.create row some 2,400 rows above the prompt.
    assert len(padded) <= len(tabbed) + KEPT_ROWS, (len(padded), len(tabbed))
    signature = [i for i, ln in enumerate(padded) if ln.startswith("SIGNATURE")]
    create = [i for i, ln in enumerate(padded) if "users.create" in ln and "high" in ln]
    assert signature and create
    # What the author wrote is still shown: the breaks past the cap as escapes, the rest of a
    # block past its character cap said to be there, as for any other field.
    screen = "\n".join(padded)
    assert "\\n\\n" in screen and "thanks" in screen and "more)" in screen


def test_a_few_paragraphs_still_read_as_paragraphs(tmp_path: Path) -> None:
    app = _write(tmp_path / "app", "First paragraph.\n\nSecond paragraph.\nA last line.",
                 "Reads users to find the agent for a room.")
    screen = _install_screen(tmp_path, app)
    assert "\\n" not in screen
    rows = [ln.strip().strip("“”") for ln in screen.splitlines()]
    assert "description   “First paragraph." in rows
    assert "" in rows[rows.index("description   “First paragraph.") + 1:][:1]
    assert "Second paragraph." in rows and "A last line." in rows


def test_a_block_keeps_at_most_its_lines_and_one_blank_in_a_row() -> None:
    from host.inert import MAX_BLOCK_LINES, visible

    assert 2 * MAX_BLOCK_LINES <= KEPT_ROWS
    shown = visible("a\n\n\n\nb\n \n\nc" + "\nx" * 40, limit=10_000, one_line=False,
                    max_lines=MAX_BLOCK_LINES)
    kept = shown.split("\n")
    assert len(kept) == MAX_BLOCK_LINES
    assert kept[:4] == ["a", "", "\\n\\nb", " "]  # the second blank row of each run is escaped
    assert kept[4] == "\\nc"
    assert shown.count("x") == 40  # every character is still there
