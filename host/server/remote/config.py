"""The home's connection to a Rocket.Chat workspace.

- `HOME/rocketchat.toml`: the workspace URL, the service account's user id and the roles to
  treat as privileged beyond the built-in list. The operator may edit it; while it exists,
  `stockade serve` serves this workspace (`--server embedded` serves the embedded one).
- `HOME/rocketchat.secret` (0600, like the host's keys): the service account's personal access
  token, the webhook secret and, for Rocket.Chat 8+, the workspace's
  `CREATE_TOKENS_FOR_USERS_SECRET` (`users.createToken` refuses any call without it). It is
  read by the host process only; no app, frame, log line or audit record ever holds any of
  them. A secret file readable by group or others is refused.
"""
from __future__ import annotations

import json
import os
import secrets
import stat
import tomllib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from host.clock import Clock
from host.home import Home
from host.server.listen import is_loopback

if TYPE_CHECKING:  # imported by open_remote: a home's config is read without the HTTP client
    from host.server.remote.client import RcClient
    from host.server.remote.server import RemoteServer

CONFIG_NAME = "rocketchat.toml"
SECRET_NAME = "rocketchat.secret"  # noqa: S105 (a file name, not a secret)


class ConfigError(Exception):
    """The home's Rocket.Chat settings are missing or unsafe (one line for the operator)."""


@dataclass(frozen=True)
class RcConfig:
    url: str
    user_id: str
    token: str
    webhook_secret: str
    privileged_roles: frozenset[str] = frozenset()
    create_tokens_secret: str = ""  # users.createToken's `secret` (Rocket.Chat 8+); "" for none
    # The operator's own word that plain http to another machine is acceptable here
    # (`insecure_plain_http = true`, `connect --insecure-plain-http`): see `transport_problem`.
    insecure_plain_http: bool = False


def connected(home: Home) -> bool:
    """Whether the home names a workspace (then `serve` serves it by default)."""
    return config_path(home).exists()


def config_path(home: Home) -> Path:
    return home.root / CONFIG_NAME


def secret_path(home: Home) -> Path:
    return home.root / SECRET_NAME


def transport_problem(url: str, *, insecure_plain_http: bool = False) -> str | None:
    """Why the host will not speak to the workspace at `url`, or None.

    Every request carries the service account's token (create users, assign roles, mint
    sign-ins as any user) and every answer decides quotas, seats and which roles carry power.
    Over plain http to another machine, whoever sits on the path reads the token and can answer
    in the workspace's place. A security boundary: https://, or http:// to this machine's
    loopback (a TLS proxy or the stand-in beside the host); anything else only with the
    operator's explicit, loudly named `insecure_plain_http`."""
    parts = urllib.parse.urlsplit(url)
    if "@" in parts.netloc:
        # A security boundary: the URL is no secret. It is audited (`operator.rocketchat_connect`),
        # printed by `connect`, `check` and `serve`, and named in the workspace's unavailability
        # errors, which reach every app as its calls' refusals: a user name and password in it
        # (a proxy's basic auth) went with it. The service account signs in with its token;
        # the URL is not even repeated here.
        return ("the workspace URL holds a user name or password (USER:PASSWORD@HOST): it would "
                "be shown in audit records, messages and the errors apps see. Give the URL "
                "without it; the service account signs in with its token alone")
    if parts.scheme == "https":
        return None
    if parts.scheme != "http":
        return f"the workspace URL {url!r} is not http(s)://"
    if is_loopback(parts.hostname or "") or insecure_plain_http:
        return None
    return (f"the workspace URL {url!r} is plain http to another machine: the service "
            "account's token would cross the network readable, and whoever sits on the path "
            "could answer for the workspace. Use https://, or, on a network you trust, "
            "`insecure_plain_http = true` in rocketchat.toml (`connect --insecure-plain-http`)")


def save(home: Home, url: str, user_id: str, token: str, *, webhook_secret: str | None = None,
         create_tokens_secret: str = "", insecure_plain_http: bool = False) -> RcConfig:
    """Write both files (the secret one 0600 from its first byte); a new webhook secret unless
    one is given. Returns what was saved."""
    home.ensure()
    hook = webhook_secret or secrets.token_urlsafe(32)
    cfg = config_path(home)
    cfg.write_text(f"url = {json.dumps(url)}\nuser_id = {json.dumps(user_id)}\n"
                   "# roles with power beyond the built-in "
                   "admin-class list, which apps may never grant\nprivileged_roles = []\n"
                   + ("# the operator accepted plain http to another machine: the token "
                      "crosses the network readable\ninsecure_plain_http = true\n"
                      if insecure_plain_http else ""))
    os.chmod(cfg, 0o600)
    path = secret_path(home)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"token": token, "webhook_secret": hook,
                   "create_tokens_secret": create_tokens_secret}, f)
    os.chmod(path, 0o600)
    return load(home)


def load(home: Home, *, url: str | None = None) -> RcConfig:
    """The home's settings (`url` overrides the file's). ConfigError says what to do."""
    cfg, sec = config_path(home), secret_path(home)
    if not cfg.exists() or not sec.exists():
        raise ConfigError(f"{home.root} is not connected to a Rocket.Chat workspace: run "
                          "`stockade rocketchat connect --url URL --user-id ID` (token on stdin)")
    mode = stat.S_IMODE(sec.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{sec} is readable by others (mode {mode:o}): `chmod 600 {sec}`")
    try:
        conf = tomllib.loads(cfg.read_text())
        secret = json.loads(sec.read_text())
    except (ValueError, OSError) as exc:
        raise ConfigError(f"cannot read the Rocket.Chat settings in {home.root}: {exc}") from None
    roles = conf.get("privileged_roles") or []
    return RcConfig(url=str(url or conf.get("url") or ""), user_id=str(conf.get("user_id") or ""),
                    token=str(secret.get("token") or ""),
                    webhook_secret=str(secret.get("webhook_secret") or ""),
                    privileged_roles=frozenset(str(r) for r in roles),
                    create_tokens_secret=str(secret.get("create_tokens_secret") or ""),
                    insecure_plain_http=conf.get("insecure_plain_http") is True)


def open_remote(home: Home, clock: Clock, *, url: str | None = None,
                client: RcClient | None = None) -> RemoteServer:
    """The home's workspace as a `RemoteServer` (Stockade's record of it in HOME/host.db)."""
    from host.server.remote.client import RcClient
    from host.server.remote.server import RemoteServer

    conf = load(home, url=url)
    problem = transport_problem(conf.url, insecure_plain_http=conf.insecure_plain_http)
    if problem:
        raise ConfigError(problem)
    return RemoteServer(client or RcClient(conf.url, conf.user_id, conf.token), home.host_store,
                        clock, privileged_roles=conf.privileged_roles,
                        create_tokens_secret=conf.create_tokens_secret)
