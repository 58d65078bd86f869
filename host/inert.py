"""Author text made inert for human eyes (DESIGN rule 12: author text is data).

Whatever an app author, a policy author or an app at run time wrote (names, descriptions,
permission reasons, setting labels, role names, log lines, finding messages) reaches the
operator's terminal only through this module. It returns rich `Text` objects, never markup
strings, so nothing the author wrote is ever parsed: `[green]`, `[conceal]`, `[/]`, `[link=…]`
and `:emoji:` codes print as the characters they are. Characters that could move the cursor,
recolour the screen, reorder or hide what the operator reads (C0/C1 controls, ESC, DEL,
bidirectional overrides and isolates, zero-width and other format characters, line and
paragraph separators, blank-looking fillers, unusual spaces) are shown as a visible escape
(`\\x1b`, `\\u202e`), and every value is capped with a visible ellipsis.

The host's own lines (signature, trust, grants) are drawn by the callers at column 0 with a
fixed host label; author text is only ever placed after a label, quoted, or inside an indented
column (`field_grid`), so it can never start a line that looks like the host's.

Bottom room of `host/`: imports only rich, so `host.apps` (the disclosure), `host.demo` and
`host.cli` can all use it. JSON output never goes through here: it is exact data for machines.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Longest one-line author value shown (names, labels, roles, reasons in lists): guards a screen
# from being pushed off by one field. The full value stays in the --json output.
MAX_ONE_LINE = 300
# Longest multi-line author block shown (descriptions, permission reasons in the table).
MAX_BLOCK = 2000
# Most lines a multi-line author block keeps (`visible(max_lines=)`), never two blank ones in a
# row; a line break past that is shown as its escape. Guards the screen's height as MAX_BLOCK
# guards its text: the caps count characters, and a description of 2,000 line breaks drew
# 2,000 empty rows, pushing the SIGNATURE verdict and the permissions above it pages away.
MAX_BLOCK_LINES = 12

# Unicode categories shown as escapes: controls, format characters (bidi marks, overrides and
# isolates, zero-width joiners, BOM...), line/paragraph separators, surrogates, private-use and
# unassigned code points. Any of them could reorder, hide or break what the operator reads.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
# Characters that render as blank or nothing although their category is a letter or a space:
# they could pad a value so that the terminal's own wrapping puts text at column 0, or hide a
# word. Plain ASCII space is the one space author text keeps.
BLANK_LOOKING = frozenset({
    "\u115f", "\u1160", "\u3164", "\uffa0",  # Hangul fillers (category Lo, render blank)
    "\u2800",  # braille pattern blank
    "\u180e",  # Mongolian vowel separator (Cf in new Unicode, Zs in old)
    "\u034f",  # combining grapheme joiner (Mn, invisible)
})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
ELLIPSIS = "…"

# The narrowest column `gutter_rows` wraps author text in; narrower, the row is cut instead
# (a 2,000-character value folded into a few cells a row would fill the screen).
MIN_WRAP_CELLS = 20

# The style of author text on screen: never the host's green/red trust colours, so a value can
# not look like a verdict even by its colour.
AUTHOR_STYLE = "cyan"


def _escape_char(ch: str) -> str:
    short = _SHORT.get(ch)
    if short is not None:
        return short
    cp = ord(ch)
    if cp <= 0xFF:
        return f"\\x{cp:02x}"
    if cp <= 0xFFFF:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def _needs_escape(ch: str) -> bool:
    if ch == " ":
        return False
    cat = unicodedata.category(ch)
    return cat in _ESCAPED_CATEGORIES or cat == "Zs" or ch in BLANK_LOOKING


def visible(value: object, *, limit: int = MAX_ONE_LINE, one_line: bool = True,
            max_lines: int | None = None) -> str:
    """`value` as plain text with nothing active left in it, capped at about `limit` characters.

    `one_line=False` keeps newlines (the caller must place the result in an indented column);
    with `max_lines`, at most that many lines and no two blank ones in a row (no leading blank
    line either), any other newline shown as its escape (`MAX_BLOCK_LINES`). Every other
    control, format or blank-looking character becomes a visible escape. The result
    contains no markup syntax the caller may rely on: pass it to rich only inside a
    `Text` (or with markup off). Backslashes are kept as they are: the escapes are for reading,
    the exact bytes are in the --json output."""
    s = value if isinstance(value, str) else str(value)
    out: list[str] = []
    shown = 0
    lines = 1
    run = 2  # newlines since the last character other than a space (the start counts as two)
    for i, ch in enumerate(s):
        if ch == "\n":
            run += 1
            keep = not one_line and (max_lines is None or (run <= 2 and lines < max_lines))
            if keep:
                lines += 1
            piece = "\n" if keep else _escape_char(ch)
        else:
            run = run if ch == " " else 0
            piece = _escape_char(ch) if _needs_escape(ch) else ch
        if shown + len(piece) > limit:
            out.append(f"{ELLIPSIS}(+{len(s) - i} more)")
            break
        out.append(piece)
        shown += len(piece)
    return "".join(out)


def output(text: str) -> str:
    """An app's or a snippet's printed output for a terminal, whole: lines and tabs kept, every
    other character `visible` escapes shown as its escape (ESC sequences cleared the screen,
    set the window's title or drew a line as the host's). No cap: it is the output the operator
    asked to see, streamed; the exact text is in the --json output."""
    return "".join(ch if ch in "\n\t" or not _needs_escape(ch) else _escape_char(ch)
                   for ch in text)


def author(value: object, *, limit: int = MAX_ONE_LINE, one_line: bool = True,
           quote: bool = True, style: str = AUTHOR_STYLE, max_lines: int | None = None) -> Text:
    """Author text as an inert, quoted, author-styled `Text` (never parsed as markup)."""
    body = visible(value, limit=limit, one_line=one_line, max_lines=max_lines)
    return Text(f"“{body}”" if quote else body, style=style)


def host(text: str, style: str = "") -> Text:
    """A literal the host wrote itself, styled, never parsed as markup.

    Host literals must not embed author values: pass those as separate `author()` parts."""
    return Text(text, style=style)


def line(*parts: Text | str) -> Text:
    """Join parts into one line. A `str` part is treated as data and made inert (one line), so
    an f-string that carries an author value cannot reach the screen unescaped."""
    out = Text()
    for p in parts:
        out.append_text(p if isinstance(p, Text) else Text(visible(p, limit=MAX_BLOCK)))
    return out


def one_row(text: Text, width: int) -> Text:
    """`text` cut to `width` cells, with a visible ellipsis.

    The CLI's consoles leave wrapping to the terminal (`soft_wrap`), and a terminal continues a
    long line at column 0 of the next row: author text inside such a line could pad itself so
    that a row of its own choosing lands there, reading as one of the host's lines. Lines that
    carry author text inline are therefore cut to the screen (the whole value is in `--json`,
    and in the disclosure table, whose cells wrap inside their column)."""
    if text.cell_len <= width:
        return text
    cut = text.copy()
    cut.truncate(max(width, 1), overflow="ellipsis")
    return cut


def gutter_rows(console: Console, head: Text, gutter: Text, body: Text, width: int) -> list[Text]:
    """`head` + `body` as rows of at most `width` cells, `body` wrapped (folded where a word is
    too long) in the column after `head`; each row after the first starts with `gutter`, padded
    to `head`'s width. Author text never reaches column 0 or the cells where a host line puts
    its own words, yet is shown whole (it was cut at the screen's edge)."""
    room = width - head.cell_len
    if room < MIN_WRAP_CELLS:  # a screen too narrow to wrap in: one row, cut as before
        row = head.copy()
        row.append_text(body)
        return [one_row(row, width)]
    pad = gutter.copy()
    pad.append(" " * max(0, head.cell_len - gutter.cell_len))
    chunks = body.wrap(console, room, overflow="fold") if body.plain else [Text()]
    rows: list[Text] = []
    for i, chunk in enumerate(chunks):
        row = (head if i == 0 else pad).copy()
        row.append_text(chunk)
        rows.append(one_row(row, width))  # a head wider than the screen: cut as before
    return rows


def field_grid(rows: Iterable[tuple[str, Text]], *, indent: int = 2) -> Table:
    """Label/value rows: host labels in a fixed left column, values wrapped in their own column.

    A value that wraps (or keeps its newlines) continues in the value column, indented, so no
    author text can begin a line at column 0 where the host draws its trust lines."""
    grid = Table.grid(padding=(0, 2), pad_edge=False)
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(" " * indent, Text(label, style="bold"), value)
    return grid


def wrapping_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str | Text]],
                   width: int, *, show_lines: bool = False) -> Table:
    """A table whose cells wrap between words and never lose part of one. Each column gets the
    width of its longest word and the rest of the console's `width` goes to the columns with
    longer text, so cells wrap at spaces instead of being cut with an ellipsis. On a console
    too narrow for that, the widest columns give way first and only their longest words fold
    onto the next line, every character kept."""
    texts = [[col, *(str(row[i]) for row in rows)] for i, col in enumerate(columns)]
    need = [max(len(w) for cell in cells for w in (cell.split() or [""])) for cells in texts]
    natural = [max(len(ln) for cell in cells for ln in (cell.splitlines() or [""]))
               for cells in texts]
    # Each column costs its content plus two spaces of padding and one border; plus the last.
    room = width - (3 * len(columns) + 1)
    table = Table(title=title, show_lines=show_lines)
    if room < len(columns):
        for col in columns:
            table.add_column(col, overflow="fold")
    else:
        sizes = list(need)
        while sum(sizes) > room:
            # Too narrow for every word: narrow the widest column, so short columns (names,
            # levels) stay whole and only the longest words fold.
            i = max(range(len(sizes)), key=lambda k: sizes[k])
            sizes[i] -= 1
        spare = room - sum(sizes)
        while spare > 0 and any(s < n for s, n in zip(sizes, natural, strict=True)):
            # One column at a time, the one furthest from its natural width.
            i = max(range(len(sizes)), key=lambda k: natural[k] - sizes[k])
            sizes[i] += 1
            spare -= 1
        for col, size in zip(columns, sizes, strict=True):
            table.add_column(col, width=size, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table
