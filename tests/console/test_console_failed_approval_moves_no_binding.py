"""An approval that fails leaves the app id bound where it was (DESIGN rule 11). Approving a
new publisher's update with the transfer box rebinds the id to that publisher; the rebinding
was its own committed write, made before the install's row was written, so an approval whose
write then failed (another operator rejected the update, changed the settings or consented
meanwhile: `InstallChanged`, "nothing changed") had still handed the id over, and the next
package of that publisher needed no transfer. The binding now moves in the row's own
transaction, as an install's does."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from apphelp import write_app
from conhelp import SRC, Served, signed_in
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from host.apps.installs import InstallStore
from host.apps.lineage import UNVERIFIED, Lineage
from host.apps.packages import build_zip, package_folder, package_from_files, package_from_zip
from host.apps.publisher import TrustStore, public_key_line, sign_package


def _field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert m is not None, name
    return m.group(1)


def _bound(s: Served) -> str | None:
    lineage = Lineage(s.home.host_db)
    try:
        return lineage.bound("agent-sync")
    finally:
        lineage.close()


def test_an_approval_that_fails_leaves_the_id_bound_where_it_was(
        served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _bound(served) == UNVERIFIED  # the fixture installed agent-sync unsigned
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    TrustStore(served.home.trust_dir).add("acme", public_key_line(raw))
    folder = write_app(tmp_path / "v2", "agent-sync", ["livechat.read", "users.read"], [], SRC)
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', 'version = "2.0.0"')
    (folder / "app.toml").write_text(toml)
    pkg = package_from_zip(package_folder(folder)[1], "v2")
    signed = build_zip(package_from_files(dict(pkg.files), sign_package(pkg, key)))

    c = signed_in(served)
    with InstallStore(served.home.host_db) as store:
        rec = store.by_app("agent-sync")
    assert rec is not None
    iid = rec.install_id
    page = c.get("/console/updates").text
    r = c.post("/console/updates", data={"csrf": _field(page, "csrf"), "install_id": iid},
               files={"package": ("u.zip", signed)}, headers={"Origin": served.url})
    assert r.status_code == 303 and r.headers["location"] == "/console/updates", r.text
    page = c.get(f"/console/updates/{iid}").text
    assert 'id="transfer"' in page  # a new publisher: the transfer box is on the page

    # Another operator rejects the update (`app consent --reject`) just before this approval's
    # write: the write is refused, nothing of the approval may stay.
    real = InstallStore.apply_update
    raced: list[bool] = []

    def rejected_meanwhile(self: InstallStore, install_id: str, **kw: Any) -> None:
        with InstallStore(served.home.host_db) as other:
            other.clear_pending(install_id)
        raced.append(True)
        real(self, install_id, **kw)

    monkeypatch.setattr(InstallStore, "apply_update", rejected_meanwhile)
    r = c.post(f"/console/updates/{iid}/approve",
               data={"csrf": _field(page, "csrf"), "package": _field(page, "package"),
                     "publisher": _field(page, "publisher"), "transfer": "yes",
                     "grant": ["users.read"]}, headers={"Origin": served.url})
    assert raced, "the approval never reached its write"
    assert r.status_code == 400 and "nothing changed" in r.text, r.text
    with InstallStore(served.home.host_db) as store:
        after = store.get(iid)
    assert after is not None and after.version == "1.0.0"
    assert _bound(served) == UNVERIFIED, "the failed approval handed the app id over"
