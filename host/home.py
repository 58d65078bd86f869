"""The one folder that holds all host state (`--home`, `STOCKADE_HOME`, default `~/.stockade`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "STOCKADE_HOME"


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def host_db(self) -> Path:
        return self.root / "host.db"

    @property
    def server_db(self) -> Path:
        return self.root / "server.db"

    @property
    def lease_path(self) -> Path:
        """Locked by every host serving this home (`host.ledger.lease`)."""
        return self.root / "host.lock"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def trust_dir(self) -> Path:
        return self.root / "trust"

    @property
    def packages_dir(self) -> Path:
        return self.root / "packages"

    @property
    def policies_dir(self) -> Path:
        return self.root / "policies"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> Home:
        """Create the folder tree (0700: it holds signing keys and the consent store)."""
        for d in (self.root, self.keys_dir, self.trust_dir, self.packages_dir,
                  self.policies_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        return self


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Home:
    if explicit:
        return Home(Path(explicit).expanduser().resolve())
    env = os.environ.get(ENV_VAR)
    if env:
        return Home(Path(env).expanduser().resolve())
    return Home(Path("~/.stockade").expanduser().resolve())
