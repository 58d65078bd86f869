"""The one folder that holds all host state (`--home`, `STOCKADE_HOME`, default `~/.stockade`)."""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from host.errors import StartRefused

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

    @property
    def default_policy(self) -> Path:
        return self.policies_dir / DEFAULT_POLICY_NAME

    def ensure(self) -> Home:
        """Create the folder tree (0700: it holds signing keys and the consent store).

        The command that creates the policies folder also writes the shipped baseline into it,
        so a fresh home has a policy from its first command on, and a file the operator adds
        later sits beside the baseline instead of replacing it (removing it is a deliberate act).
        """
        fresh_policies = not self.policies_dir.exists()
        try:
            for d in (self.root, self.keys_dir, self.trust_dir, self.packages_dir,
                      self.policies_dir, self.logs_dir):
                d.mkdir(parents=True, exist_ok=True)
                if stat.S_IMODE(d.stat().st_mode) != 0o700:  # no write where none is needed
                    os.chmod(d, 0o700)
            if fresh_policies or not any(self.policies_dir.glob("*.toml")):
                write_default_policy(self)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EPERM):
                raise
            # An operator's fault (a file system remounted read-only after I/O errors, a full
            # disk, a home owned by someone else): one clear line, never "unexpected OSError".
            raise StartRefused(
                f"the home {self.root} cannot be written ({exc.strerror or exc})",
                "remount its file system read-write, free space, or fix the folder's owner "
                "and mode; `stockade doctor` shows every check") from None
        return self


DEFAULT_POLICY_NAME = "default.toml"


def shipped_default_policy() -> str:
    """The shipped conservative baseline (`policies/shipped/default.toml`)."""
    return resources.files("policies").joinpath("shipped/default.toml").read_text()


def write_default_policy(home: Home) -> Path:
    target = home.default_policy
    target.write_text(shipped_default_policy())
    return target


def ensure_policies(home: Home) -> None:
    """A home whose policy folder holds no file gets the shipped baseline policy again."""
    if not any(home.policies_dir.glob("*.toml")):
        write_default_policy(home)


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Home:
    if explicit:
        return Home(Path(explicit).expanduser().resolve())
    env = os.environ.get(ENV_VAR)
    if env:
        return Home(Path(env).expanduser().resolve())
    return Home(Path("~/.stockade").expanduser().resolve())
