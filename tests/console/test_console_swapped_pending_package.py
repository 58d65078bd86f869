"""A pending update whose package file was swapped on disk (whoever can write HOME/packages) is
said so on its review page, as `app consent` refuses it before showing anything, and can still
be rejected from the console. The page showed the swapped package's disclosure as the pending
update (its version, its publisher line), every approval of it was a 409 "not the one you
reviewed", and so was every rejection: the console could not discard it."""
from __future__ import annotations

import re
from pathlib import Path

from apphelp import write_app
from conhelp import SRC, Served, signed_in
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.apps.packages import package_folder
from host.cli.main import root


def _folder(tmp_path: Path, version: str) -> Path:
    folder = write_app(tmp_path / version, "agent-sync", ["livechat.read", "users.read"], [],
                       SRC)
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', f'version = "{version}"')
    (folder / "app.toml").write_text(toml)
    return folder


def test_a_swapped_pending_package_is_said_and_can_be_rejected(served: Served,
                                                               tmp_path: Path) -> None:
    r = CliRunner().invoke(root, ["--home", str(served.home.root), "app", "update", "agent-sync",
                                  str(_folder(tmp_path, "1.1.0")), "--allow-unsigned"])
    assert r.exit_code == 1, r.output  # parked
    with InstallStore(served.home.host_db) as store:
        rec = store.by_app("agent-sync")
    assert rec is not None and rec.pending is not None
    recorded = rec.pending.package_hash
    rec.pending.package_path.write_bytes(package_folder(_folder(tmp_path, "6.6.6"))[1])
    c = signed_in(served)
    page = c.get(f"/console/updates/{rec.install_id}")
    assert "6.6.6" not in page.text, "the swapped package was shown as the pending update"
    assert page.status_code == 409 and "behind the host" in page.text, page.text
    # the queue's Reject names the version it lists, by the hash the host recorded
    form = re.search(rf'action="/console/updates/{rec.install_id}/reject".*?name="csrf" '
                     r'value="([^"]+)".*?name="package" value="([^"]+)"', page.text, re.S)
    assert form is not None and form.group(2) == recorded, page.text
    r2 = c.post(f"/console/updates/{rec.install_id}/reject",
                data={"csrf": form.group(1), "package": form.group(2)},
                headers={"Origin": served.url})
    assert r2.status_code == 303, r2.text
    with InstallStore(served.home.host_db) as store:
        after = store.get(rec.install_id)
    assert after is not None and after.pending is None and after.version == "1.0.0"
