"""Helpers for tests that need apps: write an app folder, install it, write a policy file."""
from __future__ import annotations

import textwrap
from pathlib import Path

from host.apps.installs import InstallRecord
from host.apps.operations import install_package
from host.apps.packages import read_package
from host.apps.publisher import TrustStore, check_signature
from host.home import Home


def write_app(root: Path, app_id: str, permissions: list[str], events: list[str],
              source: str, settings: str = "") -> Path:
    d = root / app_id
    d.mkdir(parents=True, exist_ok=True)
    perms = "".join(f'\n[[permission]]\nname = "{p}"\nreason = "test needs {p}"\n'
                    for p in permissions)
    (d / "app.toml").write_text(textwrap.dedent(f'''\
        id = "{app_id}"
        name = "{app_id.title()}"
        version = "1.0.0"
        author = "tests"
        api = ">=1,<2"
        entry = "main:TestApp"
        events = {events!r}
        ''').replace("'", '"') + perms + settings)
    (d / "main.py").write_text(textwrap.dedent(source))
    return d


def install(home: Home, folder: Path, grants: list[str] | None = None) -> InstallRecord:
    pkg = read_package(folder)
    sig = check_signature(pkg, TrustStore(home.trust_dir))
    return install_package(home, pkg, sig, frozenset(grants if grants is not None
                                                     else pkg.manifest.asked),
                           policy_revision=None)


def write_policy(home: Home, name: str, text: str) -> None:
    (home.policies_dir / f"{name}.toml").write_text(textwrap.dedent(text))


# One manifest setting of each kind, by key: the settings tests (CLI and console) build the
# `[[setting]]` blocks they need from these (`settings_toml`).
SETTING_BLOCKS = {
    "batch": 'key = "batch"\ntype = "int"\nlabel = "Batch size"\n',
    "limit": 'key = "limit"\ntype = "int"\nlabel = "Limit"\ndefault = 7\n',
    "verbose": 'key = "verbose"\ntype = "bool"\nlabel = "Verbose"\n',
    "mode": 'key = "mode"\ntype = "select"\nlabel = "Mode"\noptions = ["fast", "safe"]\n',
    "api_key": 'key = "api_key"\ntype = "secret"\nlabel = "API key"\n',
    "crm_url": 'key = "crm_url"\ntype = "string"\nlabel = "CRM address"\nrequired = true\n',
}


def settings_toml(*keys: str) -> str:
    """The manifest's `[[setting]]` blocks for `keys` (of `SETTING_BLOCKS`), in that order."""
    return "".join(f"\n[[setting]]\n{SETTING_BLOCKS[k]}" for k in keys)
