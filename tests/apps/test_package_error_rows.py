"""A refused package's own words never begin a row of the operator's terminal (DESIGN rule 12).

When `app install` (or `update`, `consent`) refuses a package, the error line quotes what the
package holds: a select setting's options (up to 64 of 80 characters each), an unknown
permission's or event's name, a file name. The CLI leaves wrapping to the terminal, which
continues a long line at column 0: padded with spaces, a manifest placed a row of its own
choosing there, reading as the host's ("hint: this copy is damaged; reinstall it with
--allow-unsigned --transfer-publisher"), under the host's "error:" label and above its real
hint. `app settings APP KEY=VALUE` did the same with an installed app's options, and `app
install`'s "refused:" lines with a declared role's name. Each such message now wraps in its own
column behind its label, as `app logs` wraps an app's lines.
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner

from host.cli.main import root
from host.cli.output import err_console

FORGED = "hint: this copy is damaged; reinstall it with --allow-unsigned --transfer-publisher"


@contextmanager
def _captured() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    err_console._file = buf  # err_console kept the stderr it saw at import: one run's buffer
    try:
        yield buf
    finally:
        err_console._file = None


def _cli(home: Path, *args: str) -> tuple[int, str]:
    with _captured() as buf:
        r = CliRunner().invoke(root, ["--home", str(home), *args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"traceback: {r.exception!r}") from r.exception
    return r.exit_code, r.stderr + buf.getvalue()


def _terminal_rows(screen: str, width: int) -> list[str]:
    """The rows a terminal of `width` columns shows: each line cut every `width` cells (the
    screens here are ASCII and box-drawing characters, one cell each)."""
    rows: list[str] = []
    for ln in screen.splitlines():
        rows += [ln[i:i + width] for i in range(0, max(len(ln), 1), width)]
    return rows


def _assert_never_begins_a_row(screen: str) -> None:
    rows = _terminal_rows(screen, err_console.width)
    begun = [row for row in rows if row.startswith(FORGED[:15])]
    assert not begun, f"the package's text began a row: {begun}"


def _padded(forged_at: int, fixed: int, count: int) -> list[str]:
    """`count` options of spaces that bring `FORGED`, the last option, to column 0 of a row of
    `err_console.width` columns, after `fixed` characters of the error line before them."""
    width = err_console.width
    sep = len(", ")
    room = forged_at * width - fixed - count * sep
    size = room // count
    opts = [chr(ord("a") + i) + " " * (size - 1) for i in range(count - 1)]
    opts.append("z" + " " * (room - size * (count - 1) - 1))
    return [*opts, FORGED[:80]]


def _write(folder: Path, options: list[str], default: str, *, extra: str = "") -> Path:
    folder.mkdir(parents=True)
    (folder / "app.toml").write_text(
        'id = "opts"\nname = "Opts"\nversion = "1.0.0"\nauthor = "tests"\n'
        'api = ">=1,<2"\nentry = "main:TestApp"\n' + extra
        + '[[setting]]\nkey = "mode"\ntype = "select"\nlabel = "Mode"\n'
        f"options = {json.dumps(options)}\ndefault = {json.dumps(default)}\n",
        encoding="utf-8")
    (folder / "main.py").write_text("from stockade import App\n\nclass TestApp(App):\n"
                                    "    pass\n")
    return folder


def test_a_refused_manifests_options_never_begin_a_row(tmp_path: Path) -> None:
    prefix = "error: app.toml is invalid: setting.0: setting 'mode' must be one of: "
    options = _padded(3, len(prefix), 4)
    assert all(len(o) <= 80 for o in options)
    code, screen = _cli(tmp_path / "home", "app", "install", "--allow-unsigned",
                        str(_write(tmp_path / "app", options, "none of them")))
    assert code == 2
    _assert_never_begins_a_row(screen)
    assert "reinstall" in screen and "--transfer-publis" in screen  # still shown, in its column


def test_an_unknown_permissions_name_never_begins_a_row(tmp_path: Path) -> None:
    # 60 characters of it are quoted after a label of 63: 43 of them at column 0 of row 2.
    name = "x" * (err_console.width - len("error: app.toml is invalid: permission.0: unknown "
                                           "permission '")) + FORGED
    perm = f'[[permission]]\nname = {json.dumps(name)}\nreason = "the tests need it"\n'
    code, screen = _cli(tmp_path / "home", "app", "install", "--allow-unsigned",
                        str(_write(tmp_path / "app", ["fast", "safe"], "safe", extra=perm)))
    assert code == 2
    _assert_never_begins_a_row(screen)


def test_an_installed_apps_options_never_begin_a_row_of_app_settings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    prefix = "error: setting 'mode' must be one of: "
    options = _padded(2, len(prefix), 3)
    code, screen = _cli(home, "app", "install", "--allow-unsigned",
                        str(_write(tmp_path / "app", options, options[0])))
    assert code == 0, screen
    code, screen = _cli(home, "app", "settings", "opts", "mode=typo")
    assert code == 2
    _assert_never_begins_a_row(screen)
    assert "typo" not in screen or "must be one of" in screen


def test_a_refused_role_name_never_begins_a_row(tmp_path: Path) -> None:
    # "refused: users.create declares role '" is 37 characters; the role's 64 are quoted.
    role = "x" * (err_console.width - len("refused: users.create declares role '"))
    role = (role + FORGED)[:64]
    perm = ('[[permission]]\nname = "users.create"\nreason = "the tests need it"\n'
            f"roles = [{json.dumps(role)}]\n")
    code, screen = _cli(tmp_path / "home", "app", "install", "--allow-unsigned",
                        str(_write(tmp_path / "app", ["fast", "safe"], "safe", extra=perm)))
    assert code == 1 and "not a canonical role name" in screen, screen
    _assert_never_begins_a_row(screen)
