"""What the operator reviews is what the console applies (DESIGN rule 7): approving or rejecting
an update names the package that was on the page, and a different one parked since is refused
with nothing changed; approving names the publisher line that was on the page, and a signature
that reads differently at the click is refused the same way."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from apphelp import write_app
from conhelp import SRC, Served, signed_in
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.apps.packages import build_zip, package_folder, package_from_files, package_from_zip
from host.apps.publisher import TrustStore, public_key_line, sign_package
from host.cli.main import root


def _field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert m is not None, name
    return m.group(1)


def _park(s: Served, tmp_path: Path, perms: list[str], events: list[str], version: str) -> None:
    """A version of agent-sync that asks for more, parked through the real CLI."""
    folder = write_app(tmp_path / f"v{version}", "agent-sync", perms, events, SRC)
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', f'version = "{version}"')
    (folder / "app.toml").write_text(toml)
    r = CliRunner().invoke(root, ["--home", str(s.home.root), "app", "update", "agent-sync",
                                  str(folder), "--allow-unsigned"])
    assert r.exit_code == 1, r.output  # parked: it waits for consent


def _agent_sync(s: Served) -> Any:
    with InstallStore(s.home.host_db) as store:
        return store.by_app("agent-sync")


def test_approve_or_reject_refuses_an_update_other_than_the_one_reviewed(
        served: Served, tmp_path: Path) -> None:
    _park(served, tmp_path, ["livechat.read", "users.read"], [], "1.1.0")
    c = signed_in(served)
    iid = _agent_sync(served).install_id
    page = c.get(f"/console/updates/{iid}").text
    assert "to 1.1.0?" in page and "events added" not in page
    reviewed = _agent_sync(served).pending.package_hash
    assert re.findall(r'name="package" value="([^"]+)"', page) == [reviewed, reviewed]
    # someone else parks a different version between the operator's reading and clicking
    _park(served, tmp_path, ["livechat.read", "users.read"],
          ["livechat.room_started", "livechat.guest_saved"], "9.9.9")
    for action, extra in (("approve", {"grant": ["users.read"]}), ("reject", {})):
        r = c.post(f"/console/updates/{iid}/{action}",
                   data={"csrf": _field(page, "csrf"), "package": reviewed, **extra},
                   headers={"Origin": served.url})
        assert r.status_code == 409 and "review it again" in r.text, (action, r.text)
        rec = _agent_sync(served)
        assert rec.version == "1.0.0" and not rec.manifest.events
        assert rec.pending is not None and rec.pending.version == "9.9.9"
    # no package named at all: refused the same way
    r = c.post(f"/console/updates/{iid}/approve", data={"csrf": _field(page, "csrf")},
               headers={"Origin": served.url})
    assert r.status_code == 409 and _agent_sync(served).version == "1.0.0"
    # reviewed again, the new version is what the operator approves
    page = c.get(f"/console/updates/{iid}").text
    assert "to 9.9.9?" in page and "events added" in page
    r = c.post(f"/console/updates/{iid}/approve",
               data={"csrf": _field(page, "csrf"), "package": _field(page, "package"),
                     "publisher": _field(page, "publisher"), "allow_unsigned": "yes",
                     "grant": ["users.read"], "widening": "yes"},  # its events: their own yes
               headers={"Origin": served.url})
    assert r.status_code == 303, r.text
    rec = _agent_sync(served)
    assert rec.version == "9.9.9" and rec.grants == frozenset({"livechat.read", "users.read"})


# Roles a manifest declares for users.create: 180 characters of others before the one that
# matters, which a cut of the host's "manifest declares roles: ..." line would hide.
PADDING_ROLES = ["a" * 60, "b" * 60, "c" * 60]
LATE_ROLE = "livechat-agent"


def _with_roles(folder: Path) -> Path:
    roles = ", ".join(f'"{r}"' for r in [*PADDING_ROLES, LATE_ROLE])
    toml = (folder / "app.toml").read_text()
    (folder / "app.toml").write_text(toml.replace(
        'name = "users.create"', f'name = "users.create"\nroles = [{roles}]'))
    return folder


def _row(page: str, row_id: str) -> str:
    m = re.search(rf'<tr id="{row_id}">(.*?)</tr>', page, re.S)
    assert m is not None, row_id
    return m.group(1)


def test_a_late_declared_role_is_shown_on_the_install_consent_page(
        served: Served, tmp_path: Path) -> None:
    from host.apps.packages import package_folder

    c = signed_in(served)
    data = package_folder(_with_roles(write_app(tmp_path / "p", "hirer", ["users.create"], [],
                                                SRC)))[1]
    r = c.post("/console/install", data={"csrf": _field(c.get("/console/install").text, "csrf")},
               files={"package": ("a.zip", data)}, headers={"Origin": served.url})
    assert r.status_code == 200, r.text
    row = _row(r.text, "perm-users.create")
    assert "manifest declares roles" in row and LATE_ROLE in row and "more)" not in row


def test_a_late_declared_role_is_shown_on_the_update_review_page(
        served: Served, tmp_path: Path) -> None:
    folder = _with_roles(write_app(tmp_path / "v2", "agent-sync",
                                   ["livechat.read", "users.create"], [], SRC))
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', 'version = "2.0.0"')
    (folder / "app.toml").write_text(toml)
    r = CliRunner().invoke(root, ["--home", str(served.home.root), "app", "update", "agent-sync",
                                  str(folder), "--allow-unsigned"])
    assert r.exit_code == 1, r.output
    page = signed_in(served).get(f"/console/updates/{_agent_sync(served).install_id}").text
    row = _row(page, "perm-users.create")
    assert "manifest declares roles" in row and LATE_ROLE in row and "more)" not in row
    diff = re.search(r'<table id="diff">(.*?)</table>', page, re.S)
    assert diff is not None and "more)" not in diff.group(1)


def _shown(page: str) -> str:
    """The publisher line the approve form names ("" when it names none)."""
    m = re.search(r'name="publisher" value="([^"]+)"', page)
    return m.group(1) if m is not None else ""


def _signed_update(s: Served, tmp_path: Path, version: str) -> tuple[bytes, TrustStore]:
    """A wider agent-sync signed by a key the home trusts (as "acme")."""
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    trust = TrustStore(s.home.trust_dir)
    trust.add("acme", public_key_line(raw))
    folder = write_app(tmp_path / f"v{version}", "agent-sync", ["livechat.read", "users.read"],
                       [], SRC)
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', f'version = "{version}"')
    (folder / "app.toml").write_text(toml)
    pkg = package_from_zip(package_folder(folder)[1], "update")
    return build_zip(package_from_files(dict(pkg.files), sign_package(pkg, key))), trust


def test_an_update_untrusted_since_its_review_is_not_approved(served: Served,
                                                              tmp_path: Path) -> None:
    """The page said "signed by the trusted publisher acme"; acme is untrusted (its key
    leaked) before the click: the approval is refused (409) and nothing changes, as an
    install's confirm is; reviewed again, it needs "I accept an unsigned package"."""
    signed, trust = _signed_update(served, tmp_path, "1.1.0")
    c = signed_in(served)
    iid = _agent_sync(served).install_id
    page = c.get("/console/updates").text
    r = c.post("/console/updates", data={"csrf": _field(page, "csrf"), "install_id": iid},
               files={"package": ("u.zip", signed)}, headers={"Origin": served.url})
    assert r.status_code == 303 and r.headers["location"] == "/console/updates", r.text
    page = c.get(f"/console/updates/{iid}").text
    assert "Signed by the trusted publisher acme" in page and 'id="allow-unsigned"' not in page
    assert trust.remove("acme")  # meanwhile, `stockade keys untrust acme`
    form = {"csrf": _field(page, "csrf"), "package": _field(page, "package"),
            "publisher": _shown(page), "grant": ["users.read"]}
    for extra in ({}, {"allow_unsigned": "yes"}):  # not even with the tick: review it again
        r = c.post(f"/console/updates/{iid}/approve", data={**form, **extra},
                   headers={"Origin": served.url})
        assert r.status_code == 409 and "review it again" in r.text, r.text
        rec = _agent_sync(served)
        assert rec.version == "1.0.0" and rec.grants == frozenset({"livechat.read"})
    page = c.get(f"/console/updates/{iid}").text
    assert "key you do not trust" in page and 'id="allow-unsigned"' in page
    form = {"csrf": _field(page, "csrf"), "package": _field(page, "package"),
            "publisher": _shown(page), "grant": ["users.read"]}
    r = c.post(f"/console/updates/{iid}/approve", data=form, headers={"Origin": served.url})
    assert r.status_code == 400 and "unsigned package" in r.text
    assert _agent_sync(served).version == "1.0.0"
    r = c.post(f"/console/updates/{iid}/approve", data={**form, "allow_unsigned": "yes"},
               headers={"Origin": served.url})
    assert r.status_code == 303, r.text
    rec = _agent_sync(served)
    assert rec.version == "1.1.0" and rec.publisher.get("status") == "unknown-publisher"
