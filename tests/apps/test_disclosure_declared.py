"""What a manifest declares (the departments its app user joins as an agent, the roles it will
assign) is author text, shown as author text (DESIGN rule 12). Review finding: department
names were drawn unquoted, in the host's style, in the "limits set by policy" column; a name
padded with spaces wrapped so that a row of that column read as a host quota line of the
author's choosing. Now that column holds the host's and the policy's lines alone, and the
declared names stand quoted, in the author's style, beside the author's reason."""
from __future__ import annotations

import io

import pytest
from rich.color import ColorSystem
from rich.console import Console
from rich.style import Style

from host.apps.disclosure import build_disclosure, render_disclosure
from host.apps.manifest import parse_manifest
from host.apps.publisher import SignatureCheck
from host.inert import AUTHOR_STYLE

FAKE = "at most 1 livechat.add_agent per 1d"


def _manifest(departments: list[str] | None = None, roles: list[str] | None = None):
    perm = "livechat.agents" if departments is not None else "users.create"
    extra = (f"app_user_agent = true\ndepartments = {departments!r}" if departments is not None
             else f"roles = {roles!r}")
    toml = f'''id = "bot"
name = "Bot"
version = "1.0.0"
author = "a"
api = ">=1,<2"
entry = "main:Bot"
[[permission]]
name = "{perm}"
reason = "makes its own app user an agent in sales"
{extra}
'''.replace("'", '"')
    return parse_manifest(toml.encode())


def _limit_rows(manifest, width: int) -> list[str]:
    buf = io.StringIO()
    console = Console(file=buf, width=width, soft_wrap=True, markup=False, emoji=False,
                      highlight=False, color_system=None)
    render_disclosure(build_disclosure(manifest, "sha256:" + "0" * 64,
                                       SignatureCheck("unsigned"), None), console)
    return [ln.split("│")[4] for ln in buf.getvalue().splitlines() if ln.count("│") == 5]


def _padded() -> list[list[str]]:
    """Every way of padding: after a name, inside one name, as a name of spaces alone (each
    name at most 64 characters, as the manifest has it)."""
    out = [["sales" + " " * k, FAKE] for k in range(0, 60)]
    out += [["sales" + " " * k + FAKE] for k in range(0, 25)]
    out += [["sales", " " * k, FAKE] for k in range(1, 65)]
    return out


@pytest.mark.parametrize("width", [60, 80, 100, 120, 160])
def test_a_padded_department_never_draws_a_policy_line(width: int) -> None:
    """Attack: department names padded with spaces so the table's wrapping starts a row of the
    policy column with a fake quota line. No author text reaches that column at all."""
    for deps in _padded():
        rows = _limit_rows(_manifest(departments=deps), width)
        assert not any("livechat.add_agent" in r or "sales" in r for r in rows), \
            (width, deps, rows)


@pytest.mark.parametrize("width", [60, 80, 120])
def test_padded_roles_never_draw_a_policy_line(width: int) -> None:
    for k in range(0, 61):
        for roles in (["bot" + " " * k, FAKE], ["bot" + " " * min(k, 26) + FAKE]):
            rows = _limit_rows(_manifest(roles=roles), width)
            assert not any("livechat.add_agent" in r for r in rows), (width, roles, rows)


def test_the_declaration_is_shown_quoted_in_the_authors_style() -> None:
    m = _manifest(departments=["Sales", "Nowhere"])
    d = build_disclosure(m, "h", SignatureCheck("unsigned"), None)
    console = Console(record=True, width=200)
    render_disclosure(d, console)
    text = console.export_text()
    assert "makes its app user an available livechat agent" in text
    assert "“Sales, Nowhere”" in text
    # in the author's colour, as the reason is
    buf = io.StringIO()
    render_disclosure(d, Console(file=buf, width=200, force_terminal=True,
                                 color_system="standard"))
    colour = Style.parse(AUTHOR_STYLE).render("“Sales, Nowhere”", color_system=ColorSystem.STANDARD)
    assert colour in buf.getvalue(), buf.getvalue()
    # the --json form keeps the exact declaration as data of its own
    [p] = d.to_dict()["permissions"]
    assert p["departments"] == ["Sales", "Nowhere"] and p["app_user_agent"] is True
    assert not any("Sales" in x for x in p["limits"])
