"""The console's review of a pending update names every widening the CLI's diff names (review
finding: an update that newly makes its app user a livechat agent waited for consent, but the
review page showed only "permissions kept", so Approve looked like approving nothing). And
what the console signs is what it shows: the REST identity the operator consented to."""
from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pytest
from apphelp import write_app
from conhelp import SRC, Served, signed_in
from rich.console import Console
from typer.testing import CliRunner

from host.apps.appdiff import PermissionDiff, render_diff
from host.apps.disclosure import Disclosure
from host.apps.installs import InstallStore
from host.apps.operations import install_package
from host.apps.packages import read_package
from host.apps.publisher import SignatureCheck, TrustStore, check_signature
from host.cli.main import root
from host.console.updates import diff_rows

NOTHING = PermissionDiff(
    old_version="1.0.0", new_version="1.1.0", added=frozenset(), removed=frozenset(),
    kept=frozenset({"livechat.agents"}), events_added=frozenset(), events_removed=frozenset(),
    settings_added=frozenset(), settings_removed=frozenset(), publisher_changed=False)

# One diff per kind of widening (each alone makes an update wait for consent), and a word the
# page must show for it.
WIDENINGS = {
    "added": (frozenset({"users.create"}), "users.create"),
    "roles_widened": ({"roles.assign": frozenset({"*"})}, "any role"),
    "agent_widened": (frozenset({"*", "sales", "vip"}), "livechat agent"),
    "events_added": (frozenset({"message.pre_send"}), "sees every message"),
    "secrets_added": (frozenset({"crm_token"}), "crm_token"),
    "publisher_changed": (True, "different key"),
    "downgrade": (True, "DOWNGRADE"),
}


def _empty_disclosure() -> Disclosure:
    return Disclosure(app_id="bot", name="Bot", version="1.1.0", author="a", content_hash="h",
                      signature=SignatureCheck("unsigned"), permissions=(), events=(),
                      settings=(), dangers=(), policy_revision=None)


def test_every_widening_kind_is_covered_here() -> None:
    """A new kind of widening added to PermissionDiff must be added to this test (and so to the
    page): every field that can make `needs_consent` true is in WIDENINGS."""
    widening = set()
    for f in dataclasses.fields(PermissionDiff):
        value = getattr(NOTHING, f.name)
        probe = (True if isinstance(value, bool) else frozenset({"x"}) if isinstance(
            value, frozenset) else {"roles.assign": frozenset({"x"})} if isinstance(value, dict)
            else None)
        if probe is not None and f.name != "kept" and dataclasses.replace(
                NOTHING, **{f.name: probe}).needs_consent:
            widening.add(f.name)
    assert widening == set(WIDENINGS)


@pytest.mark.parametrize("kind", sorted(WIDENINGS))
def test_the_console_shows_each_widening_the_cli_shows(kind: str) -> None:
    value, word = WIDENINGS[kind]
    diff = dataclasses.replace(NOTHING, **{kind: value})
    assert diff.needs_consent
    buf = io.StringIO()
    render_diff(diff, _empty_disclosure(), Console(file=buf, width=200, color_system=None))
    cli = buf.getvalue()
    page = "\n".join(f"{what} {values}" for what, values in diff_rows(diff.to_dict()))
    widened = [w for w, _v in diff_rows(diff.to_dict()) if w != "permissions kept"]
    assert widened, (kind, page)
    assert word in page, (kind, page)
    assert cli.count("+") + cli.count("!") >= 1, cli  # the CLI marks it as a widening too




def _folder(root_dir: Path, version: str, extra: str, perms: list[str]) -> Path:
    folder = write_app(root_dir / version, "bot", perms, [], SRC)
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', f'version = "{version}"')
    if extra:
        toml = toml.replace('reason = "test needs livechat.agents"',
                            f'reason = "test needs livechat.agents"\n{extra}')
    (folder / "app.toml").write_text(toml)
    return folder


def _install(s: Served, folder: Path, grants: frozenset[str], rest_as: str | None = None) -> str:
    pkg = read_package(folder)
    return install_package(s.home, pkg, check_signature(pkg, TrustStore(s.home.trust_dir)),
                           grants, policy_revision=None, rest_as=rest_as).install_id


def _park(s: Served, folder: Path) -> None:
    r = CliRunner().invoke(root, ["--home", str(s.home.root), "app", "update", "bot",
                                  str(folder), "--allow-unsigned"])
    assert r.exit_code == 1, r.output  # parked: it waits for consent


def test_the_review_page_names_an_app_user_newly_made_an_agent(
        served: Served, tmp_path: Path) -> None:
    iid = _install(served, _folder(tmp_path, "1.0.0", "", ["livechat.agents"]),
                   frozenset({"livechat.agents"}))
    _park(served, _folder(tmp_path, "1.1.0", 'app_user_agent = true\ndepartments = ["sales"]',
                          ["livechat.agents"]))
    page = signed_in(served).get(f"/console/updates/{iid}").text
    diff = re.search(r'<table id="diff">(.*?)</table>', page, re.S)
    assert diff is not None
    assert "becomes a livechat agent" in diff.group(1) and "sales" in diff.group(1), \
        diff.group(1)


def test_the_review_page_shows_and_keeps_the_consented_rest_identity(
        served: Served, tmp_path: Path) -> None:
    """The operator named `svc` for the app's REST routes at install. The review of an update
    that widens says so, and approving it signs that identity again: what is shown is what
    is signed (the page said "the app's own user" while the approval signed `svc`)."""
    iid = _install(served, _folder(tmp_path, "1.0.0", "", ["server.rest"]),
                   frozenset({"server.rest"}), rest_as="svc")
    _park(served, _folder(tmp_path, "1.1.0", "", ["server.rest", "users.read"]))
    c = signed_in(served)
    page = c.get(f"/console/updates/{iid}").text
    assert "act as server user &#39;svc&#39;" in page or "act as server user 'svc'" in page, \
        page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    pkg = re.search(r'name="package" value="([^"]+)"', page)
    shown = re.search(r'name="publisher" value="([^"]+)"', page)
    assert csrf is not None and pkg is not None and shown is not None
    r = c.post(f"/console/updates/{iid}/approve",
               data={"csrf": csrf.group(1), "package": pkg.group(1), "grant": ["users.read"],
                     "publisher": shown.group(1), "allow_unsigned": "yes"},
               headers={"Origin": served.url})
    assert r.status_code == 303, r.text
    with InstallStore(served.home.host_db) as store:
        rec = store.get(iid)
    assert rec is not None and rec.version == "1.1.0" and rec.rest_as == "svc"


def test_declared_departments_are_author_text_outside_the_policy_column(
        served: Served, tmp_path: Path) -> None:
    """Attack (DESIGN rule 12): a department named like a host quota line. The page shows it
    in the author's class beside what the permission allows, never in "What the policy
    allows"."""
    fake = "at most 1 livechat.add_agent per 1d"
    iid = _install(served, _folder(tmp_path, "1.0.0", "", ["livechat.agents"]),
                   frozenset({"livechat.agents"}))
    _park(served, _folder(tmp_path, "1.1.0",
                          f'app_user_agent = true\ndepartments = ["sales", "{fake}"]',
                          ["livechat.agents"]))
    page = signed_in(served).get(f"/console/updates/{iid}").text
    row = re.search(r'<tr id="perm-livechat.agents">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert fake not in cells[-1] and "sales" not in cells[-1], cells[-1]
    assert f'<span class="author">“sales, {fake}”</span>' in cells[2], cells[2]
