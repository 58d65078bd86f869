"""DESIGN rule 12 (author text is data), attacked through the real CLI.

Hostile manifests and policy files go through `stockade app install`, `app info`, `app list`,
`app logs` and `policy check` (typer's CliRunner on the real root command, the real package
reader and disclosure renderer); the rendered screen must hold no terminal escape, no bidi or
zero-width code point, no author text at column 0 where the host draws its own lines, the
author's markup verbatim, and no traceback.
"""
from __future__ import annotations

import io
import json
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from host.cli.main import root
from host.cli.output import EXIT_CONFIRM, EXIT_NEGATIVE, err_console
from host.home import Home
from host.inert import BLANK_LOOKING, MAX_ONE_LINE, visible

FORGED = "✔ Signed by trusted publisher acme (key 0123456789abcdef)"
# Hostile pieces a property test combines: markup that would colour, hide, link or crash,
# raw terminal escapes (SGR, OSC 8 hyperlink, cursor moves), bidi overrides and isolates,
# zero-width and other invisible characters, carriage returns and newlines.
HOSTILE = [
    f"[green]{FORGED}[/]", "[conceal]hidden sentence[/conceal]", "[/]", "[/green]",
    "[link=https://evil.example]click[/link]", "[bold", ":warning:", "\x1b[32m", "\x1b[0m",
    "\x1b]8;;https://evil.example\x1b\\", "\x1b[2K\x1b[1A", "\x9b31m", "\u202e", "\u202d",
    "\u2066", "\u2069", "\u200e", "\u061c", "\u200b", "\u200d", "\u2060", "\ufeff", "\r",
    "\n", f"\n{FORGED}", "\x7f", "\x00", "\u2028", "\u3164", "\u00a0", "SIGNATURE  ✔ ",
]
INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}
# Lines the host itself draws at column 0 on the install screen (everything the author wrote
# is indented under a label, or inside a table cell).
HOST_COLUMN0 = ("Install ", "SIGNATURE  ", "Permissions asked", "Settings:", "This app asks",
                "Events it handles: ", "DANGER ", "No policy loaded", "policy revision ",
                "policy: ", "refused: ", "error: ", "hint: ", "Users created")


def toml_str(s: str) -> str:
    """A TOML basic string holding exactly `s` (controls escaped as TOML requires)."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif unicodedata.category(ch) == "Cc":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def write_app(folder: Path, *, name: str = "Helper", author: str = "Tests",
              description: str = "", reason: str = "to sync agents with the CRM",
              label: str = "CRM URL", setting_description: str = "",
              role: str = "bot") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.toml").write_text(
        f'id = "evil"\nname = {toml_str(name)}\nversion = "1.0.0"\n'
        f"author = {toml_str(author)}\ndescription = {toml_str(description)}\n"
        'api = ">=1,<2"\nentry = "main:TestApp"\nevents = []\n'
        f'[[permission]]\nname = "users.create"\nreason = {toml_str(reason)}\n'
        f"roles = [{toml_str(role)}]\n"
        f'[[setting]]\nkey = "url"\ntype = "string"\nlabel = {toml_str(label)}\n'
        f"description = {toml_str(setting_description)}\n", encoding="utf-8")
    (folder / "main.py").write_text("class TestApp:\n    pass\n")
    return folder


@contextmanager
def captured() -> Iterator[io.StringIO]:
    # err_console holds the stderr it saw at import: point it at a buffer for one run (not a
    # monkeypatch fixture, so hypothesis examples can share a test).
    buf = io.StringIO()
    err_console._file = buf
    try:
        yield buf
    finally:
        err_console._file = None


def cli(home: Path, *args: str) -> tuple[int, str, str]:
    """Run the real root command; return (exit code, stdout, human stderr). A Python exception
    escaping the command (a traceback for the operator) fails the test here."""
    with captured() as buf:
        r = CliRunner().invoke(root, ["--home", str(home), *args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"traceback from {args}: {r.exception!r}") from r.exception
    return r.exit_code, r.stdout, r.stderr + buf.getvalue()


def assert_inert(screen: str) -> None:
    """Nothing on the screen can act on the terminal or hide from the operator."""
    assert "\x1b" not in screen, "an escape sequence reached the terminal"
    assert "\x9b" not in screen, "a C1 CSI reached the terminal"
    for ch in screen:
        if ch != "\n":
            assert unicodedata.category(ch) not in INVISIBLE_CATEGORIES, \
                f"invisible or control character U+{ord(ch):04X} reached the screen"


def column0_lines(screen: str) -> list[str]:
    """Lines that start at column 0 with text (not indentation, not a table border)."""
    return [ln for ln in screen.splitlines()
            if ln and not ln[0].isspace() and ln[0] not in "┏┃┡│└━╇┩┗┣┠╭╰"]


def assert_host_owns_column0(screen: str, *, signed: bool) -> None:
    for ln in column0_lines(screen):
        assert ln.startswith(HOST_COLUMN0), f"author text reached column 0: {ln!r}"
    signature = [ln for ln in screen.splitlines() if ln.startswith("SIGNATURE")]
    assert len(signature) == 1, signature
    assert ("trusted publisher" in signature[0]) is signed
    if not signed:
        assert "UNSIGNED" in signature[0]


# ---- attacks that succeeded before author text was made inert --------------------------------

def test_a_name_with_control_characters_is_refused_as_bad_input(tmp_path: Path) -> None:
    # it becomes the app user's display name on the chat server: refused at validation
    # (exit 2), never a traceback from the server after consent
    app = write_app(tmp_path / "app", name=f"Helper\n{FORGED}\x1b[32m")
    code, _, screen = cli(tmp_path / "home", "app", "install", str(app), "--allow-unsigned",
                          "--grant", "users.create")
    # (the refusal wraps in its own column behind "error:": its words, not its rows)
    assert code == 2 and "must not contain control characters" in " ".join(screen.split())
    assert_inert(screen)


def test_a_name_that_reorders_how_it_reads_is_refused_as_bad_input(tmp_path: Path) -> None:
    # A right-to-left override makes the chat server display "\u202enimda" as "admin": the app
    # user would read as another account wherever the server shows names.
    app = write_app(tmp_path / "app", name="\u202enimda")
    code, _, screen = cli(tmp_path / "home", "app", "install", str(app), "--allow-unsigned",
                          "--grant", "users.create")
    assert code == 2 and "must not contain U+202E" in " ".join(screen.split()), screen
    assert_inert(screen)


def test_unsigned_package_cannot_draw_a_green_signed_line(tmp_path: Path) -> None:
    # the author field was printed at the end of the title line: its newline started a green
    # line at column 0 that only the host may draw
    app = write_app(tmp_path / "app", author=f"Mallory\n[green]{FORGED}[/]",
                    description=f"ok\n[bold green]{FORGED}[/]",
                    reason=f"sync\n[green]{FORGED}[/]")
    code, out, screen = cli(tmp_path / "home", "app", "install", str(app))
    assert code == EXIT_CONFIRM  # unsigned, no --allow-unsigned: shown, then refused
    assert out == ""
    assert not any(FORGED in ln for ln in column0_lines(screen))
    assert_host_owns_column0(screen, signed=False)
    assert_inert(screen)
    assert "Mallory\\n[green]✔ Signed" in screen  # shown verbatim, as the author's words


def test_conceal_cannot_hide_a_sentence(tmp_path: Path) -> None:
    hidden = "[conceal]Sends every transcript to a third party.[/conceal]"
    app = write_app(tmp_path / "app", description=hidden, label=hidden)
    code, _, screen = cli(tmp_path / "home", "app", "install", str(app))
    assert code == EXIT_CONFIRM
    assert screen.count("[conceal]") >= 2 and "[/conceal]" in screen


def test_unbalanced_close_tag_does_not_crash_app_install(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", name="oops [/]", author="[/] me", role="agent [/]")
    code, _, screen = cli(tmp_path / "home", "app", "install", str(app))
    assert code == EXIT_NEGATIVE
    assert "oops [/]" in screen and "[/] me" in screen


def test_unbalanced_close_tag_does_not_crash_policy_check(tmp_path: Path) -> None:
    # the path as the operator typed it reads ".../p[/]<U+202E>[conceal].toml": a directory
    # "p[" holding a file "]\u202e[conceal].toml", both chosen by whoever wrote the policy
    bad = tmp_path / "p[" / "]\u202e[conceal].toml"
    bad.parent.mkdir()
    bad.write_text('schema = 1\nname = "b"\n"x[/]" = 1\n')
    code, out, screen = cli(tmp_path / "home", "policy", "check", str(bad))
    assert code == EXIT_NEGATIVE and out == ""
    assert_inert(screen)
    assert "p[/]\\u202e[conceal].toml" in screen and "STK004" in screen


def test_raw_escapes_in_the_manifest_never_reach_the_terminal(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", author="\x1b]8;;http://x\x07a",
                    description="\x1b[2J\x1b[Hcleared",
                    reason="\x1b[32mgreen\x1b[0m and \u202eright-to-left")
    code, _, screen = cli(tmp_path / "home", "app", "install", str(app))
    assert code == EXIT_CONFIRM
    assert_inert(screen)
    assert "\\x1b[2J" in screen and "\\u202e" in screen


def test_installed_app_info_list_and_logs_are_inert(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # No Cc, no bidirectional control, no line separator: a name may not hold them (they are
    # refused at install); what a name may hold that no terminal should show raw, it does.
    evil = f"Helper\u200b{FORGED}\u2800[/]\u200b"
    app = write_app(tmp_path / "app", name=evil, role="bot",
                    description=f"Helper\u2028{FORGED}\u202e[/]\u200b\n\x1b[31m")
    code, out, _ = cli(home, "app", "install", str(app), "--allow-unsigned",
                       "--grant", "users.create", "--json")
    assert code == 0, out
    install_id = json.loads(out)["install"]["install_id"]
    for args in (("app", "info", "evil"), ("app", "list")):
        code, _, screen = cli(home, *args)
        assert code == 0
        assert_inert(screen)
        # `key: value` lines: the host's key comes first, the author's value never leads
        assert not any(ln.startswith(("✔", "Signed", "SIGNATURE"))
                       for ln in screen.splitlines())
        assert args[1] == "list" or "\\u200b✔ Signed" in screen
    log = Home(home).logs_dir / f"{install_id}.log"  # where the supervisor writes print()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"hello\n\x1b[2K\x1b[1A{FORGED}\u202e[/]\n[/]short\n")
    code, _, screen = cli(home, "app", "logs", "evil")
    assert code == 0 and "hello" in screen
    assert_inert(screen)
    assert all(ln.startswith("│ ") for ln in screen.splitlines())  # the host's log gutter
    # (each line is cut to the screen: the long one's tail is in --json; markup stays text)
    assert "\\x1b[2K" in screen and "[/]short" in screen


# ---- the property: any hostile text in any manifest field ------------------------------------

hostile_text = st.lists(
    st.one_of(st.sampled_from(HOSTILE), st.text(min_size=1, max_size=12)),
    min_size=1, max_size=6).map("".join)
FIELDS = ("name", "author", "description", "reason", "label", "setting_description", "role")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), text=hostile_text, pad=st.integers(0, 90))
def test_any_hostile_field_renders_inert(tmp_path: Path, field: str, text: str,
                                         pad: int) -> None:
    value = " " * pad + text  # padding tries to make the terminal's wrap start a line
    if field == "reason":
        value = value.ljust(10, ".")  # the manifest's minimum reason length
    if field in ("name", "label", "role"):
        value = value[:64] or "x"
    folder = tmp_path / f"app-{field}-{abs(hash(value))}"
    write_app(folder, **{field: value})
    code, out, screen = cli(tmp_path / "home", "app", "install", str(folder))
    # 1: guardrail (a role that is not a canonical name) refuses at consent; 2: the manifest
    # itself is refused (e.g. an empty name); 3: unsigned without --allow-unsigned. Never a
    # traceback, never an install.
    assert code in (EXIT_NEGATIVE, 2, EXIT_CONFIRM), screen
    assert out == ""
    assert_inert(screen)
    if code != 2:
        assert_host_owns_column0(screen, signed=False)


@given(st.text(max_size=400))
def test_visible_leaves_nothing_active_and_caps(text: str) -> None:
    shown = visible(text)
    assert not any(unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in shown)
    assert len(shown) <= MAX_ONE_LINE + len("…(+000 more)")
    if len(text) <= 50 and all(ch == " " or (unicodedata.category(ch)[0] in "LNPS"
                                             and ch not in BLANK_LOOKING) for ch in text):
        assert shown == text  # ordinary text is shown verbatim


@pytest.mark.parametrize("ch", ["\u202a", "\u202e", "\u2066", "\u2069", "\u200e", "\u200f",
                                "\u061c", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff",
                                "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\u3164"])
def test_each_invisible_character_is_shown_as_an_escape(ch: str) -> None:
    expected = f"a\\x{ord(ch):02x}b" if ord(ch) <= 0xFF else f"a\\u{ord(ch):04x}b"
    assert visible(f"a{ch}b") == expected


def test_update_diff_shows_new_reasons_inert(tmp_path: Path) -> None:
    home = tmp_path / "home"
    v1 = write_app(tmp_path / "v1", role="bot")
    code, out, _ = cli(home, "app", "install", str(v1), "--allow-unsigned",
                       "--grant", "users.create", "--json")
    assert code == 0, out
    v2 = write_app(tmp_path / "v2", role="bot")
    toml = (v2 / "app.toml").read_text().replace('version = "1.0.0"', 'version = "1.1.0"')
    evil = f"read rooms\n  [green]+ nothing new[/]\x1b[8m{FORGED}\u202e[conceal]x[/conceal]"
    toml += f'[[permission]]\nname = "livechat.read"\nreason = {toml_str(evil)}\n'
    (v2 / "app.toml").write_text(toml)
    code, _, screen = cli(home, "app", "update", "evil", str(v2), "--allow-unsigned")
    assert code == EXIT_NEGATIVE  # asks for more: pending until consent
    assert_inert(screen)
    # Verbatim (cut to the screen past its start: `one_row`).
    assert "“read rooms\\n  [green]+ nothing new[/]" in screen
    plus = [ln for ln in screen.splitlines() if ln.startswith("  + ")]
    assert [ln.split()[1] for ln in plus] == ["livechat.read"]  # one host "+" line, no forgery


def test_the_consoles_never_parse_markup_and_no_print_turns_it_back_on() -> None:
    from host.cli.output import out_console

    for console in (err_console, out_console):
        saved, buf = console._file, io.StringIO()
        console._file = buf
        try:
            console.print("[green]✔[/] :warning: [/]")
        finally:
            console._file = saved
        assert buf.getvalue() == "[green]✔[/] :warning: [/]\n"
    # a print that re-enables markup (or hand-escapes it instead of building Text) is how
    # author text got parsed before: none may come back anywhere in the host
    root_dir = Path(__file__).resolve().parents[2] / "host"
    for path in root_dir.rglob("*.py"):
        text = path.read_text()
        assert "markup=True" not in text, path
        assert "rich.markup" not in text, path


def test_author_text_inline_never_wraps_into_a_row_of_its_own(tmp_path: Path) -> None:
    """The consoles leave wrapping to the terminal, which continues a long line at column 0:
    a reason or a setting's value padded with spaces could put a row of its choosing there,
    reading as the host's ("  - roles.assign (no longer asked; ...)", "  publisher:  signed by").
    Every line carrying author text inline fits the screen; the host's warnings stay whole."""
    width = err_console.width
    fake = ["  - roles.assign (no longer asked; the grant is dropped)",
            "  publisher:  signed by acme (key 0123456789abcdef), trusted"]

    def padded(head: str) -> str:
        """A value that, printed after `head` on a terminal `width` wide and wrapped there,
        puts each fake row at column 0."""
        return "Tidy." + " " * (width - len(head) - 5) + "".join(f.ljust(width) for f in fake)
    home = tmp_path / "home"
    default, reason = toml_str(padded("    url: ")), toml_str(padded("  + roles.assign (critical) — “"))
    v1 = write_app(tmp_path / "v1")
    toml = (v1 / "app.toml").read_text()
    (v1 / "app.toml").write_text(toml.replace(
        'type = "string"', f'type = "string"\ndefault = {default}'))
    code, out, _ = cli(home, "app", "install", str(v1), "--allow-unsigned",
                       "--grant", "users.create", "--json")
    assert code == 0, out
    v2 = write_app(tmp_path / "v2")
    toml = (v2 / "app.toml").read_text().replace('version = "1.0.0"', 'version = "1.1.0"')
    toml += ('[[permission]]\nname = "roles.assign"\nroles = ["bot"]\n'
             f"reason = {reason}\n")
    (v2 / "app.toml").write_text(toml)
    code, _, update = cli(home, "app", "update", "evil", str(v2), "--allow-unsigned")
    assert code == EXIT_NEGATIVE
    assert "admin-class roles are never assignable" in update
    _, _, info = cli(home, "app", "info", "evil")
    _, _, shown = cli(home, "app", "settings", "evil")
    for screen in (update, info, shown):
        # The rows a terminal `width` wide shows: each line cut into pieces of that width.
        rows = [ln[i:i + width] for ln in screen.splitlines()
                for i in range(0, max(len(ln), 1), width)]
        assert not [r for r in rows if r.rstrip() in fake], screen
        assert [r for r in rows if "Tidy." in r]  # the value is shown, cut to the screen
