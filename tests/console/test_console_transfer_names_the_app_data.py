"""The console's review of an update from another publisher says what the transfer box hands
over with the install it keeps: the records the app stored in its private storage, which the
new publisher's code then reads (`app consent` says the same). Before, the box read only
"Transfer the app id to the new publisher"."""
from __future__ import annotations

import re
from pathlib import Path

from apphelp import write_app
from conhelp import SRC, Served, signed_in
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from host.apps.installs import InstallStore
from host.apps.packages import build_zip, package_folder, package_from_files, package_from_zip
from host.apps.publisher import TrustStore, public_key_line, sign_package
from host.bridges.persistence import PersistenceStore


def _field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert m is not None, name
    return m.group(1)


def test_the_transfer_box_names_the_stored_data_it_hands_over(
        served: Served, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    TrustStore(served.home.trust_dir).add("acme", public_key_line(raw))
    folder = write_app(tmp_path / "v2", "agent-sync", ["livechat.read", "users.read"], [], SRC)
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', 'version = "2.0.0"')
    (folder / "app.toml").write_text(toml)
    pkg = package_from_zip(package_folder(folder)[1], "v2")
    signed = build_zip(package_from_files(dict(pkg.files), sign_package(pkg, key)))
    with InstallStore(served.home.host_db) as store:
        rec = store.by_app("agent-sync")
    assert rec is not None
    iid = rec.install_id
    data = PersistenceStore(served.home.host_db)
    for n in range(3):  # what the unsigned first publisher's app kept
        data.put(iid, f"visitor:{n}", {"email": f"v{n}@example.org"})
    data.close()

    c = signed_in(served)
    page = c.get("/console/updates").text
    r = c.post("/console/updates", data={"csrf": _field(page, "csrf"), "install_id": iid},
               files={"package": ("u.zip", signed)}, headers={"Origin": served.url})
    assert r.status_code == 303, r.text
    page = c.get(f"/console/updates/{iid}").text
    box = page[page.index('id="transfer"'):]
    box = box[:box.index("</label>")]
    assert "3 stored item(s)" in box, box
